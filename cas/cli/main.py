"""Entry point of ``cas`` and ``python -m cas``: argument parsing and error mapping.

Exit status: 0 success, 1 finished with findings (verify/fsck), 2 usage error,
3-63 the ``exit_code`` of the CasError raised, 70 an unexpected internal
error, 130 interrupted. Errors print one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from cas import __version__

VERBS = ("init", "add", "ls", "log", "show", "diff", "get", "checkout", "verify", "alias", "tag", "fsck", "stats",
         "lineage", "runs", "link", "unlink")


def _terminal_columns() -> int:
    """Columns as ``shutil.get_terminal_size`` reports them ($COLUMNS, the terminal, else 80)."""
    try:
        cols = int(os.environ["COLUMNS"])
        if cols > 0:
            return cols
    except (KeyError, ValueError):
        pass
    try:
        cols = os.get_terminal_size(sys.__stdout__.fileno()).columns
        if cols > 0:
            return cols
    except (AttributeError, ValueError, OSError):
        pass
    return 80


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, sized without importing shutil.

    argparse builds a formatter for every ``add_argument``, and the default one
    imports shutil, which loads zlib, bz2 and lzma: a cold start reads them from disk.
    """

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         _terminal_columns() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser (and, through add_subparsers, sub-parsers) using ``_HelpFormatter``."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


class _Unused:
    """Takes the arguments of a verb whose parser is not built (see ``build_parser``)."""

    def add_argument(self, *args, **kwargs) -> None:
        pass

    def add_mutually_exclusive_group(self, **kwargs) -> "_Unused":
        return self


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Return the argument parser of all verbs, or of the verb ``only`` alone.

    Building the parsers of twenty verbs is most of the CLI's own start-up
    (argparse looks up a translation of every help string), so a command
    line that names its verb gets only that verb's parser.
    """
    p = _Parser(
        prog="cas",
        description="cas: a local-first, content-addressed artifact store (git for data).",
        epilog="References are [project/]name[:vN|:semver|:alias]; no selector means latest.",
    )
    p.add_argument("--version", action="version", version=f"cas {__version__}")
    p.add_argument("--repo", metavar="PATH", help="repository (default: .cas found upward, else $CAS_HOME)")
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")
    subparsers = p.add_subparsers(dest="verb", metavar="COMMAND")

    class sub:  # noqa: N801 - stands in for ``subparsers`` below
        @staticmethod
        def add_parser(name: str, **kwargs):
            if only is not None and name != only:
                return _Unused()
            return subparsers.add_parser(name, **kwargs)


    s = sub.add_parser("init", help="create a repository (.cas) in PATH (default: current directory)")
    s.add_argument("path", nargs="?", default=".")

    s = sub.add_parser("add", help="version files, directories or references (URIs) as a new artifact version")
    s.add_argument("paths", nargs="+", metavar="PATH",
                   help="a local file or directory (stored), or a URI file://, s3://, gs://, http(s):// "
                        "(added as a reference: its bytes stay at the source)")
    s.add_argument("--name", "-n", help="artifact name (default: base name of the first PATH)")
    s.add_argument("--type", "-t", default="dataset", help="artifact type (default: dataset)")
    s.add_argument("--project", "-p", default=None, help="project (default: 'default')")
    s.add_argument("--alias", "-a", action="append", default=[], help="alias to set (repeatable)")
    s.add_argument("--tag", action="append", default=[], help="version tag (repeatable)")
    s.add_argument("-m", "--description", help="description")
    s.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE",
                   help="metadata item; VALUE is parsed as JSON when it can be (repeatable)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--version", dest="semver", metavar="SEMVER",
                   help="semantic version label, e.g. 1.2.0 (MAJOR.MINOR.PATCH[-pre][+build])")
    g.add_argument("--bump", choices=("major", "minor", "patch"),
                   help="label it with the collection's highest semantic version, incremented")
    s.add_argument("--no-checksum", action="store_true",
                   help="references: record URI and size only, no checksum")
    s.add_argument("--max-objects", type=int, default=None, metavar="N",
                   help="references: most objects a prefix may expand to (default 10000000); more is an error")

    s = sub.add_parser("ls", help="list artifacts, or the files of a version")
    s.add_argument("ref", nargs="?", help="a version reference: list its files")
    s.add_argument("--type", help="only collections of this type")
    s.add_argument("--prefix", default="", help="only files whose path starts with this")

    s = sub.add_parser("log", help="version history of an artifact, newest first")
    s.add_argument("name")
    s.add_argument("--all", action="store_true", help="include deleted versions")

    s = sub.add_parser("show", help="details of one version")
    s.add_argument("ref")

    s = sub.add_parser("diff", help="files added, removed and modified between two versions")
    s.add_argument("old")
    s.add_argument("new")

    s = sub.add_parser("get", help="download a version's files")
    s.add_argument("ref")
    s.add_argument("dest", nargs="?", help="target directory (default: ./artifacts/NAME:vN)")
    s.add_argument("--prefix", default=None, help="only files whose path starts with this")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--overwrite", action="store_const", const="OVERWRITE", dest="strategy",
                   help="replace existing files that differ")
    g.add_argument("--preserve", action="store_const", const="PRESERVE", dest="strategy",
                   help="keep existing files that differ")
    s.add_argument("--allow-missing-references", action="store_true",
                   help="skip referenced objects that no longer exist instead of failing")

    s = sub.add_parser("checkout", help="make DIR exactly a version (removes other files)")
    s.add_argument("ref")
    s.add_argument("dir")
    s.add_argument("--allow-missing-references", action="store_true",
                   help="skip referenced objects that no longer exist instead of failing")

    s = sub.add_parser("verify", help="check DIR against a version, or the version's stored data")
    s.add_argument("ref")
    s.add_argument("dir", nargs="?")

    s = sub.add_parser("alias", help="add or remove aliases of a version")
    s.add_argument("ref")
    s.add_argument("aliases", nargs="+", metavar="ALIAS")
    s.add_argument("--remove", action="store_true", help="remove instead of add")

    s = sub.add_parser("tag", help="add or remove tags of a version (or its collection)")
    s.add_argument("ref")
    s.add_argument("tags", nargs="+", metavar="TAG")
    s.add_argument("--remove", action="store_true", help="remove instead of add")
    s.add_argument("--collection", action="store_true", help="tag the collection, not the version")

    s = sub.add_parser("fsck", help="check every object and version of the store")
    s.add_argument("--rebuild-index", action="store_true", help="delete and rebuild the LMDB index first (no other cas process may use the store meanwhile)")
    s.add_argument("--no-references", action="store_true",
                   help="do not look up referenced objects at their sources")

    sub.add_parser("stats", help="store size, objects, dedup ratio")

    s = sub.add_parser("lineage", help="runs and versions upstream (producers) and downstream (consumers)")
    s.add_argument("ref")
    s.add_argument("--depth", type=int, default=None, help="run layers to follow each way (default: all)")
    s.add_argument("--direction", choices=("up", "down", "both"), default="both")

    s = sub.add_parser("runs", help="list runs, oldest first")
    s.add_argument("--job-type", default=None, help="only runs of this job type")

    s = sub.add_parser("link", help="link a version into a registry collection [project/]name")
    s.add_argument("ref")
    s.add_argument("target")
    s.add_argument("--alias", "-a", action="append", default=[], help="alias of the link (repeatable)")

    s = sub.add_parser("unlink", help="remove a link version (its source stays)")
    s.add_argument("ref")

    s = sub.add_parser("rm", help="delete versions (history stays in 'cas log --all'; gc reclaims the data)")
    s.add_argument("refs", nargs="+", metavar="REF")
    s.add_argument("--delete-aliases", action="store_true", help="also remove aliases that point at them")

    s = sub.add_parser("ttl", help="set the time to live of a version, or a collection's default")
    s.add_argument("ref", help="a version (NAME:vN), or with --collection a collection NAME")
    s.add_argument("duration", help="e.g. 3600, 90m, 12h, 30d, 2w; 'none' to clear")
    s.add_argument("--collection", action="store_true", help="set the collection's default ttl")

    s = sub.add_parser("gc", help="delete expired versions and reclaim space no live version needs")
    s.add_argument("--dry-run", "-n", action="store_true", help="report what would be freed; change nothing")
    s.add_argument("--grace", default=None, metavar="DURATION",
                   help="never touch data written within this time (default 24h)")
    return p


def _verb(argv: list[str]) -> str | None:
    """The verb a command line names before any help option, else None (build every parser)."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--repo":
            i += 2
            continue
        if a in ("-h", "--help", "--version", "--") or not a.startswith("-") and a not in _VERBS:
            return None
        if not a.startswith("-"):
            return a
        i += 1
    return None


_VERBS = frozenset(("init add ls log show diff get checkout verify alias tag fsck stats lineage runs link unlink "
                    "rm ttl gc").split())


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_verb(argv))
    args = parser.parse_args(argv)
    if not args.verb:
        parser.print_help()
        return 2
    from cas.errors import CasError

    try:
        from cas.cli import commands, lineage

        fn = getattr(commands, "cmd_" + args.verb, None) or getattr(lineage, "cmd_" + args.verb)
        return fn(args) or 0
    except CasError as exc:
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        _error(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
        return 74
    except Exception as exc:  # a bug: still one line, no traceback
        _error(f"internal error: {type(exc).__name__}: {exc}; please report it")
        return 70


def _error(message: str) -> None:
    sys.stderr.write("cas: error: " + " ".join(message.split()) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
