"""Counts test cases from Bazel's test.xml files and prints 'N passed, N failed'.

Usage: count_tests.py TESTLOGS_DIR //target ...  Only the named targets are read, so
results of tests that no longer exist do not count; a target without a test.xml (it
did not build or did not run) counts as one failed case.
"""
import os
import sys
import xml.etree.ElementTree as ET


def count(xml_path):
    passed = failed = skipped = 0
    root = ET.parse(xml_path).getroot()
    cases = list(root.iter("testcase"))
    for case in cases:
        if case.get("status") == "notrun" or case.find("skipped") is not None:
            skipped += 1
            continue
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        else:
            passed += 1
    if not cases:  # a crash before any case was recorded
        failed += 1
    return passed, failed, skipped


def main():
    testlogs, targets = sys.argv[1], sys.argv[2:]
    passed = failed = 0
    for target in targets:
        path = target.lstrip("/").replace(":", "/")
        xml_path = os.path.join(testlogs, path, "test.xml")
        if not os.path.exists(xml_path):
            print(f"no result for {target}", file=sys.stderr)
            failed += 1
            continue
        p, f, s = count(xml_path)
        passed += p
        failed += f
        if s:
            # Skipped cases (say, no root for network namespaces) are neither: say so.
            print(f"{s} skipped in {target} (see its test.log for why)", file=sys.stderr)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
