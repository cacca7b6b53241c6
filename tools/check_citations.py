#!/usr/bin/python3
"""Checks that every document citation in the sources resolves to a section in the repository.

A citation names a document and a section: `docs/maths.md §4.4` (more sections may follow:
`docs/spec.md §3, §7`, `§4.4–§4.7`). Inside docs/*.md a Markdown link to a sibling document
(`[maths.md](maths.md) §2`) cites it, and a bare `§N` cites the document itself. A section exists
when the document has a heading that starts with its number (`## 4. …`, `### 4.4 …`).

Fails (exit 1, one line per problem, path:line) on:
  - a citation of a missing document or of a section the document does not have;
  - a citation of a document outside the repository ("SPEC §", "reference §");
  - a bare `§N` outside docs/ that names no document (unless it cites an external standard or
    book named just before it on the line: FIPS, Higham's "Accuracy and Stability").

usage: tools/check_citations.py [REPO_ROOT]   (default: this script's repository)
Plain Python 3, no dependencies; run by ctest as the `citations` test.
"""
import os
import re
import sys

# What is scanned: sources, tests, tools, build files and the docs. README.md is not (it is
# written for users and cites nothing by section).
SCAN = ["lib", "cl", "apps", "include", "tests", "tools", "cmake", "docs", "CMakeLists.txt", ".ci"]
SKIP_DIRS = {os.path.join("tests", "fixtures"), os.path.join("tests", "fuzz", "corpus")}

SECTION = r"§(\d+(?:\.\d+)*)"
# Between a document's name and its section: spaces, a closing backtick, and line breaks with
# the comment markers of the next line (a citation may wrap).
GAP = r"`?(?:\s|\*|//|#)+"
MORE = r"((?:\s*(?:,|/|and|–|-|to)\s*§\d+(?:\.\d+)*)*)"
DOC_CITE = re.compile(r"(docs/[\w.-]+\.md)" + GAP + SECTION + MORE)
LINK_CITE = re.compile(r"\[[^\]]*\]\(([\w.-]+\.md)\)" + GAP + SECTION + MORE)
OUTSIDE = re.compile(r"(?i)\b(spec|reference)\s*§")
BARE = re.compile(SECTION)
HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s")
# External works whose own section numbers the code may cite.
EXTERNAL = re.compile(r"FIPS|Higham|Stability")
SELF = os.path.join("tools", "check_citations.py")


def sections_of(path):
    found = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = HEADING.match(line)
            if m:
                found.add(m.group(1))
    return found


def text_files(root):
    for top in SCAN:
        path = os.path.join(root, top)
        if os.path.isfile(path):
            yield top
            continue
        for d, dirs, files in os.walk(path):
            rel_dir = os.path.relpath(d, root)
            dirs[:] = sorted(x for x in dirs if os.path.join(rel_dir, x) not in SKIP_DIRS)
            for name in sorted(files):
                yield os.path.join(rel_dir, name)


def check(root):
    docs_cache = {}
    problems = []
    count = 0

    def resolve(where, doc, numbers):
        nonlocal count
        path = os.path.join(root, doc)
        if doc not in docs_cache:
            docs_cache[doc] = sections_of(path) if os.path.isfile(path) else None
        have = docs_cache[doc]
        if have is None:
            problems.append(f"{where}: cites {doc}, which does not exist")
            return
        for number in numbers:
            count += 1
            if number not in have:
                problems.append(f"{where}: {doc} has no section §{number}")

    files = 0
    for rel in text_files(root):
        if rel == SELF:
            continue
        try:
            with open(os.path.join(root, rel), encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue  # binary files
        files += 1
        if "§" not in text:
            continue
        in_docs = rel.startswith("docs" + os.sep) and rel.endswith(".md")

        def where(offset):
            return f"{rel}:{text.count(chr(10), 0, offset) + 1}"

        used = [False] * len(text)
        for m in OUTSIDE.finditer(text):
            problems.append(f"{where(m.start())}: cites '{m.group(0)}', a document outside the "
                            "repository: cite docs/spec.md or docs/maths.md instead")
            used[m.end() - 1] = True
        patterns = [(DOC_CITE, "")] + ([(LINK_CITE, "docs/")] if in_docs else [])
        for pattern, base in patterns:
            for m in pattern.finditer(text):
                numbers = [m.group(2)] + re.findall(r"§(\d+(?:\.\d+)*)", m.group(3))
                resolve(where(m.start()), base + m.group(1), numbers)
                for j in range(m.start(), m.end()):
                    used[j] = True
        for m in BARE.finditer(text):
            if used[m.start()]:
                continue
            if in_docs:
                resolve(where(m.start()), rel.replace(os.sep, "/"), [m.group(1)])
                continue
            line_start = text.rfind(chr(10), 0, m.start()) + 1
            if not EXTERNAL.search(text[line_start:m.start()]):
                problems.append(f"{where(m.start())}: '§{m.group(1)}' names no document (write "
                                f"docs/maths.md §{m.group(1)} or docs/spec.md §{m.group(1)})")
    return problems, count, files


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    problems, count, files = check(os.path.abspath(root))
    for p in problems:
        print(p)
    if problems:
        print(f"check_citations: {len(problems)} problem(s); sections are the numbered headings "
              "of docs/*.md")
        return 1
    print(f"check_citations: {count} citations in {files} files resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
