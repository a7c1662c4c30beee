"""The front door: the click CLI (cli/), the train -> convert -> bench pipeline, and the commands
that read what all three stages produce: ship, serve (serve/), and the budget's judge (judge.py,
ray_search.py). It may import train, convert and benchmarks; nothing imports it.
"""
