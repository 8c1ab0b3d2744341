#!/usr/bin/env python3
"""Ask a URL N times, each on a new connection without cookies, and print how often each
value of a JSON field came back, as JSON: count_answers.py URL N FIELD -> {"blue": 160, ...}.
One process instead of N Ansible uri tasks (seconds instead of minutes)."""
import collections
import json
import sys
import urllib.request

url, count, field = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seen = collections.Counter()
for _ in range(count):
    with urllib.request.urlopen(url, timeout=10) as answer:
        seen[str(json.load(answer)[field])] += 1
print(json.dumps(seen))
