"""Benchmarks: each asserts its result is correct as well as timing it, prints the machine it ran
on, and writes JSON + PNG. Entry point: ``telesurgery-bench`` (:mod:`benchmarks.cli`)."""
