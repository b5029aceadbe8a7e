"""Worklists: what each person should do next, in order, with counts."""
