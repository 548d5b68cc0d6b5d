"""Print the failed and errored tests of a JUnit XML report, last, where a CI log's tail shows them.

librdkafka's threads write to stderr as the test process exits, after pytest's own
summary, so a failing run's log can end in connection noise. ``make test`` runs this
when pytest fails: the failures are then the log's last lines.
Usage: python tools/junit_failures.py artifacts/junit.xml [--lines N]
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the JUnit XML file pytest wrote")
    parser.add_argument("--lines", type=int, default=25, help="lines of each failure's text")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"[junit] {args.report}: no report (pytest did not get as far as writing it)")
        return 1
    failed: list[str] = []
    for case in ET.parse(args.report).getroot().iter("testcase"):
        for outcome in ("failure", "error"):
            node = case.find(outcome)
            if node is None:
                continue
            name = f"{case.get('classname')}::{case.get('name')}"
            failed.append(f"{outcome.upper()} {name}")
            message = node.get("message", "")[:300]
            print(f"[junit] {outcome.upper()} {name} ({case.get('time')} s): {message}")
            text = (node.text or "").strip().splitlines()
            for line in text[-args.lines :]:
                print(f"[junit]   {line}")
    for line in failed:  # the names once more, short, so that a log's last lines hold them all
        print(f"[junit] {line}")
    print(f"[junit] {len(failed)} failed or errored test(s) in {args.report}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
