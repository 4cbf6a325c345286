#!/usr/bin/env python3
"""Parse a scrape of rvpp's /metrics with prometheus_client's text parser (what Prometheus'
Python tooling uses) and print it for control/tests/metrics.rs to compare.

usage: parse_metrics.py <file with the scraped body>
Output, tab-separated: `family<TAB>name<TAB>type` per family, then
`sample<TAB>name<TAB>k=v<US>k=v...<TAB>value` per sample (US = \\x1f). Exit 77 if
prometheus_client cannot be imported; a parse error is an exception (exit 1).
"""
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as e:
    print("prometheus_client not importable: %s" % e)
    sys.exit(77)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    for fam in text_string_to_metric_families(text):
        print("family\t%s\t%s" % (fam.name, fam.type))
        for s in fam.samples:
            labels = "\x1f".join("%s=%s" % kv for kv in sorted(s.labels.items()))
            print("sample\t%s\t%s\t%r" % (s.name, labels, float(s.value)))


if __name__ == "__main__":
    main()
