#!/usr/bin/env python3
"""Reads the TRX files of one .ci/run pass, prints 'N passed, N failed, N skipped' and exits 1 when
a test failed, did not run to a verdict, or was skipped without an entry in .ci/allowed-skips."""
import fnmatch, os, sys, xml.etree.ElementTree as ET

NS = {'t': 'http://microsoft.com/schemas/VisualStudio/TeamTest/2010'}
pass_name, allow_file, *trx_files = sys.argv[1:]
if not trx_files:
    print(f"{pass_name}: no test results (TRX) were written: the test run did not complete")
    sys.exit(1)

allowed = []
for line in open(allow_file):
    line = line.split('#', 1)[0].strip()
    if line:
        p, test, reason, when = [f.strip() for f in line.split(' | ')]
        allowed.append((p, test, reason, when))

def allowed_skip(name, reason):
    for p, test, prefix, when in allowed:
        if p == pass_name and fnmatch.fnmatchcase(name, test) and reason.startswith(prefix):
            if when == 'always' or (when == 'no-gpu' and not os.path.exists('/dev/nvidia0')):
                return True
    return False

passed = failed = skipped = 0
problems = []
for trx in trx_files:
    root = ET.parse(trx).getroot()
    results = root.findall('t:Results/t:UnitTestResult', NS)
    counters = root.find('t:ResultSummary/t:Counters', NS).attrib
    if int(counters['total']) != len(results):
        problems.append(f"{trx}: {counters['total']} tests counted, {len(results)} results: some never reported")
    for r in results:
        name, outcome = r.get('testName'), r.get('outcome')
        if outcome == 'Passed':
            passed += 1
        elif outcome == 'Failed':
            failed += 1
        elif outcome == 'NotExecuted':
            skipped += 1
            msg = r.find('t:Output/t:ErrorInfo/t:Message', NS)
            reason = (msg.text or '').strip() if msg is not None else ''
            if not allowed_skip(name, reason):
                problems.append(f"skipped, not on .ci/allowed-skips: {name}: {reason or '(no reason)'}")
        else:
            problems.append(f"{outcome}: {name}")
print(f"{pass_name}: {passed} passed, {failed} failed, {skipped} skipped")
for p in problems[:40]:
    print(f"  {p}")
if len(problems) > 40:
    print(f"  ... and {len(problems) - 40} more")
sys.exit(1 if failed or problems else 0)
