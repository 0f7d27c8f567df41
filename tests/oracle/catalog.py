"""Which of strace's tests the oracle runs, with what options, and why the others are left out.

strace's ``tests/gen_tests.in`` lists each generated test with the strace options its
script passes (``chdir -a10``; ``dup -a7 9>>/dev/full``). A test is a *candidate* when

- it uses the plain recipe (``run_strace_match_diff``: run the program under strace, compare
  strace's log with what the program printed), or a recipe of :data:`SCRIPT_RECIPES`;
- every option it passes is one libvirt-nitro has or that changes nothing it prints
  (:func:`parse_options`): ``-e trace=``, ``-s``, ``-a`` (column alignment: normalised away,
  see :mod:`tests.oracle.compare`), ``-q``/``--quiet`` and ``-e signal=`` (notes libvirt-nitro
  never prints), ``-Xabbrev`` (the default), fd redirections of the harness, and the
  harness's ``QUIRK:`` arguments;
- its first traced call is a local one (:mod:`tests.oracle.classes`);
- ``tests/oracle/tests.toml`` does not leave it out by hand.

Everything else is *left out*, each with its reason (:func:`catalogue`). The candidates that
must pass are the ``included`` list of ``tests.toml``; ``tests/oracle/report`` runs them all.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from .classes import LOCAL, NOT_LOCAL, class_of_test

__all__ = [
    "Spec",
    "LeftOut",
    "Catalogue",
    "TESTS_TOML",
    "SCRIPT_RECIPES",
    "parse_options",
    "catalogue",
    "load_toml",
]

#: The hand-kept list: included tests, tests left out by hand, class overrides.
TESTS_TOML = Path(__file__).with_name("tests.toml")
#: strace's default string limit (``-s``).
DEFAULT_STRING_LIMIT = 32


@dataclass(frozen=True)
class Spec:
    """How to run one strace test and compare its output.

    :ivar name: the test's name (its program is ``tests/NAME`` of the strace build)
    :ivar trace: the ``-e trace=`` expression
    :ivar string_limit: ``-s``
    :ivar group: its class (a key of :data:`~tests.oracle.classes.LOCAL`)
    :ivar program: the program to run (the test's own, except for a few scripts)
    :ivar args: the program's arguments (``QUIRK:PROG-ARGS``)
    :ivar redirections: shell redirections the harness gives the program (``9>>/dev/full``)
    :ivar start_from: keep libvirt-nitro's lines from the first one that matches (a regex;
        ``QUIRK:START-OF-TEST-OUTPUT`` and the scripts' ``sed -n '/RE/,$p'``)
    :ivar drop_through: drop libvirt-nitro's lines up to and including the first one that
        matches (the scripts' ``sed '0,/RE/d'``)
    :ivar drop_matching: drop libvirt-nitro's lines that match (the scripts' ``grep -v``)
    :ivar options: the strace options as gen_tests.in gives them (for the report)
    :ivar expected_file: the file that holds the expected lines (a few hand-written scripts
        compare with ``tests/NAME.expected`` rather than with the program's stdout)
    :ivar uniq: drop repeated consecutive lines of libvirt-nitro's (the scripts' ``uniq``)
    """

    name: str
    trace: str
    string_limit: int = DEFAULT_STRING_LIMIT
    group: str = ""
    program: str = ""
    args: tuple[str, ...] = ()
    redirections: tuple[str, ...] = ()
    start_from: str | None = None
    drop_through: str | None = None
    drop_matching: str | None = None
    options: str = ""
    expected_file: str | None = None
    uniq: bool = False

    @property
    def prog(self) -> str:
        """The program's name (in the strace build's ``tests/``)."""
        return self.program or self.name


@dataclass(frozen=True)
class LeftOut:
    """A test the oracle does not run: its name, why, and its class when it has one."""

    name: str
    reason: str
    group: str | None = None


@dataclass
class Catalogue:
    """Candidates (by name) and left-out tests of one strace source tree."""

    candidates: dict[str, Spec] = field(default_factory=dict)
    left_out: dict[str, LeftOut] = field(default_factory=dict)
    included: list[str] = field(default_factory=list)
    not_in_ci: dict[str, str] = field(default_factory=dict)

    def pending(self) -> dict[str, str]:
        """Candidates not included, each with why: kept out of CI (``not_in_ci``), or not
        passing yet."""
        return {
            name: self.not_in_ci.get(name, "not passing yet (python -m tests.oracle.report)")
            for name in sorted(set(self.candidates) - set(self.included))
        }

    def programs(self) -> list[str]:
        """The programs the candidates run (what the build must make)."""
        return sorted({spec.prog for spec in self.candidates.values()})


class Unsupported(Exception):
    """An option libvirt-nitro does not have (the test is left out for it)."""


@dataclass(frozen=True)
class ScriptRecipe:
    """What one of strace's test scripts (``+script`` in gen_tests.in, or a hand-written
    ``NAME.test``) does, in the oracle's terms: the options it adds before the line's own
    and how it filters strace's log before comparing."""

    options: str
    start_from: str | None = None
    drop_through: str | None = None
    drop_matching: str | None = None
    expected_file: bool = False
    uniq: bool = False


_PR_MARKER = r"0xfffffffe, 0xfffffffd, 0xfffffffc, 0xfffffffb\) += -1 "
#: The scripts the oracle understands (the others are left out as custom harness scripts).
#: Keys are the script's file name; a hand-written ``NAME.test`` that is no gen_tests.in
#: line is run when listed in :data:`HAND_WRITTEN`.
SCRIPT_RECIPES: dict[str, ScriptRecipe] = {
    "prctl.sh": ScriptRecipe(
        "-e trace=prctl", drop_through=r"^prctl\(0xffffffff( /\* PR_\?\?\? \*/)?, " + _PR_MARKER
    ),
    "arch_prctl.sh": ScriptRecipe(
        "-e trace=arch_prctl",
        drop_through=r"^arch_prctl\(0xffffffff( /\* ARCH_\?\?\? \*/)?, 0xfffffffe\) += -1 ",
    ),
    "faccessat.test": ScriptRecipe("-a23 --trace=faccessat", start_from=r"faccessat\(-1, NULL,"),
    "faccessat2.test": ScriptRecipe("-a23 --trace=faccessat2", start_from=r"faccessat2\(-1, NULL,"),
    "fadvise64.test": ScriptRecipe("-e trace=fadvise64", drop_matching=r"^fadvise64\([0123],"),
    "lseek.test": ScriptRecipe("-a30 -e trace=lseek", drop_matching=r"^lseek\([0-9]"),
    "sigaltstack.test": ScriptRecipe("-e trace=sigaltstack", expected_file=True),
    "eventfd.test": ScriptRecipe("-e trace=eventfd2", expected_file=True),
    "umovestr.test": ScriptRecipe("-e trace=chdir", expected_file=True),
    # futex.test runs the program twice, plainly and with -v: the oracle runs the first
    "futex.test": ScriptRecipe("-a27 -e trace=futex"),
    "umount.test": ScriptRecipe("-a24 -s6 -e trace=umount"),
    "umount2.test": ScriptRecipe("-s7 -e trace=umount2"),
    "xet_thread_area_x86.test": ScriptRecipe(
        "-a22 -e trace=reboot,/[gs]et_thread_area", drop_through=r"^reboot"
    ),
}

_MMAP_CALLS = "mmap,madvise,mlockall,mprotect,mremap,msync,munmap"


def script_spec(script: str, name: str, words: list[str], source: Path | None = None) -> Spec:
    """The :class:`Spec` of test *name* that gen_tests.in runs as ``+script words`` (or that
    is the hand-written ``script`` itself, with no words).

    Most scripts take strace options (:data:`SCRIPT_RECIPES`); two take arguments of their
    own: ``getuid.test`` (``-qq -a9 -e NAME``, or ``-e %creds`` running the program without
    its ``-creds`` suffix, then ``uniq``) and ``mmap.test`` (``[XLAT [ALIGN]]``: the
    program runs as ``../NAME mmap`` traced by the memory calls, the log from its first
    ``mmap(NULL, 0, PROT_NONE, ...)``).

    :raises Unsupported: an option libvirt-nitro does not have.
    :raises KeyError: a script the oracle does not translate.
    """
    if script == "getuid.test":
        base = name.removesuffix("-creds")
        trace = "%creds" if base != name else base
        recipe = ScriptRecipe(f"-qq -a9 -e trace={trace}", uniq=True)
        return replace(parse_options(name, words, recipe, source), program=base)
    if script == "mmap.test":
        xlat = words[0] if words else "abbrev"
        align = words[1] if len(words) > 1 else "20"
        if xlat != "abbrev":
            raise Unsupported(f"-X{xlat}")
        recipe = ScriptRecipe(
            f"-a{align} -e trace={_MMAP_CALLS}",
            start_from=r"^mmap\(NULL, 0, (0 /\* PROT_NONE \*/|0|PROT_NONE),",
        )
        return replace(parse_options(name, [], recipe, source), args=("mmap",))
    return parse_options(name, words, SCRIPT_RECIPES[script], source)


#: Hand-written decoder tests (``NAME.test``, not in gen_tests.in) run with their recipe.
HAND_WRITTEN = (
    "getuid",
    "mmap",
    "eventfd",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "futex",
    "lseek",
    "sigaltstack",
    "umovestr",
    "umount",
    "umount2",
    "xet_thread_area_x86",
)

#: Scripts :func:`script_spec` translates itself.
_ADAPTED = ("getuid.test", "mmap.test")

_REDIRECTION = re.compile(r"^\d*(>>|>|<)(.*)$")
_QUIET_VALUES = re.compile(r"^!?[a-z,-]*$")


def parse_options(
    name: str, words: list[str], recipe: ScriptRecipe | None = None, source: Path | None = None
) -> Spec:
    """The :class:`Spec` of test *name* run with strace options *words* (shell words), after
    the options of its script's *recipe* (*source*: the strace tree, for its
    ``.expected`` files).

    :raises Unsupported: an option libvirt-nitro does not have (its message names it).
    """
    trace: str | None = None
    string_limit = DEFAULT_STRING_LIMIT
    args: tuple[str, ...] = ()
    redirections: list[str] = []
    start_from = recipe.start_from if recipe else None
    drop_through = recipe.drop_through if recipe else None
    drop_matching = recipe.drop_matching if recipe else None
    uniq = recipe.uniq if recipe else False
    words = (shlex.split(recipe.options) if recipe else []) + list(words)
    i = 0

    def value(option: str) -> str:
        nonlocal i
        i += 1
        if i >= len(words):
            raise Unsupported(f"{option} without a value")
        return words[i]

    def expression(text: str, option: str) -> None:
        nonlocal trace
        key, eq, val = text.partition("=")
        if not eq:
            key, val = "trace", text
        if key in ("trace", "t"):
            if trace is not None and trace != val:
                raise Unsupported("several -e trace= expressions")
            trace = val
        elif key in ("signal", "signals", "s", "quiet", "silent", "silence"):
            pass  # which signal/exit notes strace prints: libvirt-nitro prints none
        elif key in ("abbrev", "a") and val == "all":
            pass  # the default
        else:
            raise Unsupported(f"{option} {text}" if option == "-e" else text)

    while i < len(words):
        word = words[i]
        redirection = _REDIRECTION.match(word)
        if redirection:
            if redirection.group(2):
                redirections.append(word)
            else:
                redirections.append(word + value(word))
        elif word.startswith("QUIRK:START-OF-TEST-OUTPUT-REGEX:"):
            start_from = _sed_regex(word.removeprefix("QUIRK:START-OF-TEST-OUTPUT-REGEX:"))
        elif word.startswith("QUIRK:START-OF-TEST-OUTPUT:"):
            start_from = re.escape(word.removeprefix("QUIRK:START-OF-TEST-OUTPUT:"))
        elif word.startswith("QUIRK:PROG-ARGS:"):
            args = tuple(word.removeprefix("QUIRK:PROG-ARGS:").split())
        elif re.fullmatch(r"-a\d+|--columns=\d+", word):
            pass  # column alignment: normalised away on both sides
        elif word in ("-a", "--columns"):
            value(word)
        elif word == "-e":
            expression(value(word), "-e")
        elif word.startswith("-e"):
            expression(word[2:], "-e")
        elif word.startswith("--trace="):
            expression("trace=" + word.removeprefix("--trace="), "--trace")
        elif word == "--trace":
            expression("trace=" + value(word), "--trace")
        elif word.startswith(("--signal=", "--quiet=")) or word in ("-q", "-qq", "--quiet"):
            pass  # strace's notes on signals, attach/exit: libvirt-nitro prints none
        elif re.fullmatch(r"-s\d+|--string-limit=\d+", word):
            string_limit = int(re.sub(r"^\D+", "", word))
        elif word in ("-s", "--string-limit"):
            string_limit = int(value(word))
        elif word in ("-Xabbrev", "--xlat-style=abbrev"):
            pass  # the default
        elif word == "-X" and i + 1 < len(words) and words[i + 1] == "abbrev":
            i += 1
        else:
            raise Unsupported(word)
        i += 1
    return Spec(
        name=name,
        trace=trace if trace is not None else name,
        string_limit=string_limit,
        args=args,
        redirections=tuple(redirections),
        start_from=start_from,
        drop_through=drop_through,
        drop_matching=drop_matching,
        options=" ".join(shlex.quote(w) for w in words),
        expected_file=(
            str((source or Path(".")) / "tests" / f"{name}.expected")
            if recipe is not None and recipe.expected_file
            else None
        ),
        uniq=uniq,
    )


def _sed_regex(text: str) -> str:
    r"""A sed basic regular expression as Python's (``\*`` stays, ``*`` stays)."""
    return text


def load_toml(path: Path = TESTS_TOML) -> dict:
    """``tests.toml``: ``included`` (names), ``left_out`` (name -> reason), ``not_in_ci``
    (name -> reason: candidates kept out of CI), ``class`` (name -> class)."""
    with path.open("rb") as file:
        data = tomllib.load(file)
    data.setdefault("included", [])
    data.setdefault("left_out", {})
    data.setdefault("not_in_ci", {})
    data.setdefault("class", {})
    return data


#: Why an option (its first word) leaves a test out, for the options that need words.
OPTION_REASONS = {
    "-y": "-y (file descriptor paths): libvirt-nitro has no -y",
    "-yy": "-yy (file descriptor details): libvirt-nitro has no -yy",
    "-v": "-v (unabbreviated structures): libvirt-nitro has no -v",
    "-P": "-P (path filter): libvirt-nitro has no -P",
    "--trace-path": "--trace-path (path filter): libvirt-nitro has no -P",
    "-f": "-f (follow forks; [pid N] prefixes): not strace's line format",
    "-Xraw": "-Xraw (raw constants): libvirt-nitro has no -X",
    "-Xverbose": "-Xverbose: libvirt-nitro has no -X",
    "--secontext": "--secontext (SELinux contexts): not available",
    "-z": "-z (successful calls only): libvirt-nitro has no -z",
    "-Z": "-Z (failed calls only): libvirt-nitro has no -Z",
    "--no-abbrev": "--no-abbrev (= -v): libvirt-nitro has no -v",
    "--decode-fds": "--decode-fds: libvirt-nitro has no -y",
    "--absolute-timestamps": "timestamps (-t): libvirt-nitro has none",
    "--timestamps": "timestamps (-t): libvirt-nitro has none",
    "--relative-timestamps": "timestamps (-r): libvirt-nitro has none",
    "--syscall-times": "-T (time spent): libvirt-nitro has no -T",
    "--strings-in-hex": "-x (strings in hex): libvirt-nitro has no -x",
    "-xx": "-xx (strings in hex): libvirt-nitro has no -x",
    "-x": "-x (non-ASCII strings in hex): libvirt-nitro has no -x",
    "--status": "--status (by outcome): libvirt-nitro has no --status",
    "-Y": "-Y (command names): not strace's line format",
    "--kvm": "--kvm=vcpu: libvirt-nitro has no --kvm",
    "-e read": "-e read= (data dumps): libvirt-nitro has no dumps",
    "-e write": "-e write= (data dumps): libvirt-nitro has no dumps",
    "-e verbose": "-e verbose=: libvirt-nitro has no -v",
    "-e raw": "-e raw=: libvirt-nitro has no raw= qualifier",
    "-e abbrev": "-e abbrev=: libvirt-nitro has no abbreviation control",
    "-e decode-fds": "-e decode-fds=: libvirt-nitro has no -y",
    "-e decode-fd": "-e decode-fd=: libvirt-nitro has no -y",
    "-e secontext": "-e secontext=: SELinux contexts, not available",
    "--failed-only": "-Z (failed calls only): libvirt-nitro has no -Z",
    "--successful-only": "-z (successful calls only): libvirt-nitro has no -z",
    "--decode-pids": "--decode-pids: not strace's line format",
    "--inject": "--inject (tampering): strace's own tampering",
    "-n": "-n (syscall numbers): libvirt-nitro has no -n",
    "-e inject": "-e inject= (fault injection): strace's own tampering",
    "-e fault": "-e fault= (fault injection): strace's own tampering",
    "-e status": "-e status=: libvirt-nitro has no status filter",
    "-e kvm": "-e kvm=: libvirt-nitro has no --kvm",
    "-e quiet": "-e quiet=",
}


def _option_reason(message: str) -> str:
    word = message.split()[0] if message else message
    key = word.split("=")[0]
    if word == "-e" or word.startswith("-e"):
        expr = message[2:].strip() if word == "-e" else word[2:]
        key = "-e " + expr.split("=")[0]
    for probe in (key, word, key.rstrip("0123456789")):
        if probe in OPTION_REASONS:
            return f"option {message}: {OPTION_REASONS[probe].split(': ', 1)[-1]}"
    if re.fullmatch(r"-X\w+", word):
        return f"option {message}: libvirt-nitro has no -X"
    if re.fullmatch(r"--secontext(=.*)?", word):
        return f"option {message}: SELinux contexts, not available"
    return f"option {message}: not a libvirt-nitro option"


def _read_gen_tests(source: Path) -> list[tuple[str, str, list[str] | None]]:
    """gen_tests.in as (name, first word, shell words or None when the line is a shell
    command the oracle does not parse)."""
    out = []
    for line in (source / "tests" / "gen_tests.in").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.strip().partition("\t") if "\t" in line else line.partition(" ")
        name, rest = name.strip(), rest.strip()
        if " " in name:
            name, _, more = name.partition(" ")
            rest = (more + " " + rest).strip()
        try:
            words = shlex.split(rest)
        except ValueError:
            words = None
        first = rest.split()[0] if rest else ""
        out.append((name, first, words))
    return out


def _makefile_list(source: Path, variable: str) -> list[str]:
    """The ``NAME.test`` entries of a ``tests/Makefile.am`` list (DECODER_TESTS...)."""
    text = (source / "tests" / "Makefile.am").read_text()
    match = re.search(rf"^{variable} = \\\n(.*?)# end of {variable}", text, re.S | re.M)
    if not match:
        return []
    return [w.removesuffix(".test") for w in match.group(1).split() if w.endswith(".test")]


def catalogue(source: Path, toml: dict | None = None) -> Catalogue:
    """Sort every test of the strace source tree *source* into candidates and left-out
    tests (with reasons); *toml* is :func:`load_toml` by default."""
    toml = load_toml() if toml is None else toml
    result = Catalogue()
    by_hand: dict[str, str] = toml["left_out"]
    classes: dict[str, str] = toml["class"]

    def classify(spec: Spec) -> None:
        group = classes.get(spec.name) or class_of_test(spec.trace)
        first = spec.trace.lstrip("!").split(",")[0].lstrip("?")
        if group is None and re.fullmatch(r"\w+", first) and first not in ("all", "none"):
            result.left_out[spec.name] = LeftOut(
                spec.name, f"trace={spec.trace}: no such x86-64 call (the program skips)"
            )
        elif group is None:
            result.left_out[spec.name] = LeftOut(
                spec.name,
                f"trace={spec.trace}: no single call names the class; set it in tests.toml [class]",
            )
        elif group in NOT_LOCAL:
            result.left_out[spec.name] = LeftOut(spec.name, NOT_LOCAL[group][1])
        elif spec.name in by_hand:
            result.left_out[spec.name] = LeftOut(spec.name, by_hand[spec.name], group)
        else:
            result.candidates[spec.name] = Spec(**{**spec.__dict__, "group": group})

    for name, first, words in _read_gen_tests(source):
        if words is None:
            result.left_out[name] = LeftOut(name, "gen_tests.in line is not shell words")
            continue
        try:
            if first.startswith("+"):
                script = first[1:]
                if script not in SCRIPT_RECIPES and script not in _ADAPTED:
                    result.left_out[name] = LeftOut(name, f"custom harness script {script}")
                    continue
                spec = script_spec(script, name, words[1:], source)
            elif first and not first.startswith("-") and not first.startswith("QUIRK:"):
                head = first.rstrip(";")
                result.left_out[name] = LeftOut(name, f"custom harness command {head}")
                continue
            else:
                spec = parse_options(name, words, None, source)
        except Unsupported as exc:
            result.left_out[name] = LeftOut(name, _option_reason(str(exc)))
            continue
        classify(spec)

    for name in _makefile_list(source, "DECODER_TESTS"):
        if name in result.candidates or name in result.left_out:
            continue
        if name in HAND_WRITTEN:
            classify(script_spec(f"{name}.test", name, [], source))
        else:
            result.left_out[name] = LeftOut(name, f"hand-written harness script {name}.test")
    for name in _makefile_list(source, "MISC_TESTS"):
        if name not in result.left_out and name not in result.candidates:
            result.left_out[name] = LeftOut(
                name, f"{name}.test checks an strace feature, not a decoder"
            )

    unknown = [n for n in [*toml["included"], *toml["not_in_ci"]] if n not in result.candidates]
    if unknown:
        raise ValueError(f"tests.toml includes tests that are no candidates: {unknown}")
    result.included = list(toml["included"])
    result.not_in_ci = dict(toml["not_in_ci"])
    return result


def summary(cat: Catalogue) -> dict[str, int]:
    """Candidates per class."""
    counts = dict.fromkeys(LOCAL, 0)
    for spec in cat.candidates.values():
        counts[spec.group] += 1
    return counts
