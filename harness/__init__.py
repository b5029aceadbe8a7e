"""What the tests, the benchmarks and the soaks share to drive a real engine: start its
server process and sign in to it. Not part of the shipped package (see harness/launch.py)."""
