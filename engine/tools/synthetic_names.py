"""Synthetic patient names for the simulated hospital: varied, deterministic, never real.

Common US given and family names (census-style frequency lists, no person behind them),
combined at random per simulated patient, so the demo's worklists read like a ward's and
not like one patient repeated. The same seed and patient number give the same name.
"""

from __future__ import annotations

import random

FEMALE = (
    "Mary", "Patricia", "Linda", "Barbara", "Elizabeth", "Jennifer", "Susan", "Margaret",
    "Dorothy", "Lisa", "Nancy", "Karen", "Betty", "Helen", "Sandra", "Donna", "Carol", "Ruth",
    "Sharon", "Michelle", "Laura", "Sarah", "Kimberly", "Deborah", "Jessica", "Shirley",
    "Cynthia", "Angela", "Melissa", "Brenda", "Amy", "Anna", "Rebecca", "Virginia", "Kathleen",
    "Pamela", "Martha", "Debra", "Amanda", "Stephanie", "Carolyn", "Christine", "Marie",
    "Janet", "Catherine", "Frances", "Ann", "Joyce", "Diane", "Alice", "Gloria", "Teresa",
    "Rosa", "Maria", "Lucia", "Mei", "Aisha", "Fatima", "Priya", "Grace", "Ngozi", "Yolanda",
)
MALE = (
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Charles", "Joseph",
    "Thomas", "Christopher", "Daniel", "Paul", "Mark", "Donald", "George", "Kenneth", "Steven",
    "Edward", "Brian", "Ronald", "Anthony", "Kevin", "Jason", "Matthew", "Gary", "Timothy",
    "Jose", "Larry", "Jeffrey", "Frank", "Scott", "Eric", "Stephen", "Andrew", "Raymond",
    "Gregory", "Joshua", "Jerry", "Dennis", "Walter", "Patrick", "Peter", "Harold", "Douglas",
    "Henry", "Carl", "Arthur", "Ryan", "Roger", "Luis", "Carlos", "Wei", "Hiroshi", "Ahmed",
    "Omar", "Rajesh", "Samuel", "Emeka", "Tomasz", "Dmitri", "Malik",
)
FAMILY = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans",
    "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris",
    "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson",
    "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson",
    "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes",
    "Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster",
    "Okafor", "Kowalski", "Chen", "Singh", "Novak", "Haddad", "Ivanova", "Yamamoto", "Mensah",
)


def synthetic_name(seed: int, patient: int, sex: str) -> str:
    """An HL7 XPN (`FAMILY^Given^M`) for simulated patient `patient`, matching `sex` (F/M).

    Drawn from its own generator so names never shift the hospital's random stream."""
    rng = random.Random(f"name:{seed}:{patient}")
    given = rng.choice(FEMALE if sex == "F" else MALE)
    middle = rng.choice("ABCDEFGHJKLMNPRSTW")
    return f"{rng.choice(FAMILY).upper()}^{given}^{middle}"
