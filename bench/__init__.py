"""The benchmark behind ``make bench`` (issue 7): ``python bench/run.py``; see bench/README.md."""
