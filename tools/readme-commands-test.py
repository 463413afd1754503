#!/usr/bin/env python3
"""Runs every tokenctl command line README.md shows, against a real tokend.

    tools/readme-commands-test.py            run the test (unittest; -v for each test's name)
    tools/readme-commands-test.py --list     print what was extracted and how each is classified
    README_COMMANDS_VERBOSE=1 tools/readme-commands-test.py     also print each command as run

Binaries: $TOKEND_BIN and $TOKENCTL_BIN, by default .build/debug/tokend and .build/debug/tokenctl.

What counts as a README command:
  - a line of a fenced code block whose shell words start tokenctl, after taking off prompts
    (`a$ `), comments, `sudo`, `runuser -u U --`, `swift run`, leading VAR=value assignments and
    redirections, and looking inside `sh -c '...'` (ExecStart= lines included);
  - inline code in prose (`tokenctl ...`) that is a complete command (names a subcommand, or
    --generate-completion-script / --help; nothing elided with "...");
  - the synopsis lines of the "## tokenctl" section (its untagged code blocks) and inline code
    written the same way ([optional] parts, a|b alternatives): each is expanded into its
    minimal form (first alternative, no optional parts), its full form (every optional part),
    and one full form per further alternative.

Each is run with placeholders replaced by real values (a session token and pair freshly issued
by the daemon, a session id, files, JSON...). Within one code block the same TOKEN is used
throughout, as a reader would (issue, verify, revoke, verify again); synopsis forms and inline
commands each get fresh ones. A command fails on exit 2 or an ArgumentParser usage message,
on exit 3 (daemon unreachable), on a timeout, and on exit 1 unless EXPECT_REFUSED says the
README line is meant to be refused. Commands that would run on are bounded: `tokenctl top` runs
with --count 1 --interval 0.2, `tokenctl bench` with -n 200 or --duration 300ms. Standard
library only.
"""

import atexit
import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
TOKEND_BIN = os.environ.get("TOKEND_BIN") or str(REPO / ".build/debug/tokend")
TOKENCTL_BIN = os.environ.get("TOKENCTL_BIN") or str(REPO / ".build/debug/tokenctl")

# Self-check of the extraction: README commands found when this test was written (README lines
# and inline snippets, before synopsis expansion). Lower it only when README really lost some.
MIN_COMMANDS = 54
# A form that must be among the extracted commands (the Operating section's advice for sudo).
MUST_FIND = "tokenctl --socket /run/tokend/tokend.sock stats"

# README commands that cannot run here, by their command text after extraction (placeholders
# intact, wrappers such as sudo removed). Every entry needs a reason, and every entry must still
# match a README command. Never add one because the command fails: fix the README or tokenctl.
SKIP: dict[str, str] = {}

# README lines (whitespace collapsed) whose command is meant to be refused (exit 1).
EXPECT_REFUSED = {
    "a$ tokenctl verify TOKEN # revoked": "verifies the token revoked on the line above",
}

COMMAND_TIMEOUT = 15      # seconds, per command
SUBJECT = "alice"
FINGERPRINT = "Mozilla/5.0 (readme-commands-test)"
AUDIENCE = "api"
ISSUER = "readme-test"
ALGORITHMS = {"HS256", "HS384", "HS512", "ES256", "Ed25519", "EdDSA", "RS256"}
GROUPS = {"keys", "jwt", "store"}          # subcommands that take a subcommand
VALUE_GLOBALS = {"--socket"}               # global options that take a value
VALUELESS = {"--json", "--all", "--prometheus", "--ttl-renew", "--help", "-h"}   # flags without a value
OFFLINE = {"jwt", "store"}
USAGE_MESSAGES = re.compile(
    r"Unknown option|Missing expected argument|Unexpected argument|Missing value for|is invalid for|Usage: tokenctl"
)
# Shell variables README's snippets use, and what they stand for here.
SHELL_VARIABLES = {
    "USER_AGENT": lambda ctx: FINGERPRINT,
    "TOKEN": lambda ctx: "TOKEN",                        # a placeholder, resolved below
    "T": lambda ctx: str(int(time.time()) + 600),        # key rollout: T=$(( $(date +%s) + 600 ))
}


# ---------------------------------------------------------------------------------------------
# Extraction


@dataclasses.dataclass
class Entry:
    """One tokenctl invocation taken from README."""
    line: int             # README line number (1-based)
    source: str           # the README text it came from (a line, or inline code)
    kind: str             # "block", "inline" or "synopsis"
    scope: str            # fixtures (tokens) are shared within one scope
    argv: list            # words after tokenctl, placeholders intact
    env: dict             # VAR=value given with the command or by its block
    form: str = "as written"

    @property
    def text(self):
        return " ".join(["tokenctl"] + [shlex.quote(w) if needs_quote(w) else w for w in self.argv])


def needs_quote(word):
    return word == "" or bool(re.search(r"[\s'\"{}$;&|<>()]", word))


def strip_comment(line):
    """The line without a shell comment (# at a word's start, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


PROMPT = re.compile(r"^\s*[\w@.:~-]*\$\s+")
OPERATORS = {";", "&&", "||", "|", "&", "(", ")", ";;"}


def is_tokenctl(word):
    return word == "tokenctl" or word.endswith("/bin/tokenctl") or bool(re.search(r"\.build/[^/]+/tokenctl$", word))


def shell_commands(text):
    """The tokenctl simple commands in one shell line: [(env, argv)]. Raises ValueError."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    tokens = list(lexer)
    segments, current = [], []
    for token in tokens:
        if token in OPERATORS:
            segments.append(current)
            current = []
        else:
            current.append(token)
    segments.append(current)
    found = []
    for words in segments:
        kept, i = [], 0
        while i < len(words):                       # redirections and their targets go
            if re.fullmatch(r"[<>&]+", words[i]):
                i += 2
                continue
            kept.append(words[i])
            i += 1
        found += unwrap(kept)
    return found


def unwrap(words):
    env = {}
    while words:
        word = words[0]
        unit = re.match(r"^(?:ExecStart|ExecStartPre|ExecStartPost|ExecReload|ExecStop)=[-@:+!]*(.*)$", word)
        if unit:
            words = ([unit[1]] if unit[1] else []) + words[1:]
        elif re.match(r"^[A-Za-z_]\w*=", word):
            name, value = word.split("=", 1)
            env[name] = value
            words = words[1:]
        elif word == "sudo":
            words = words[1:]
            while words and words[0].startswith("-"):
                words = words[2:] if words[0] in ("-u", "-g", "-C", "-D") else words[1:]
        elif word == "runuser":
            words = words[words.index("--") + 1:] if "--" in words else words[1:]
            while words and words[0].startswith("-"):
                words = words[2:] if words[0] in ("-u", "-g") else words[1:]
        elif word == "swift" and words[1:2] == ["run"]:
            words = words[2:]
            while words and words[0].startswith("-"):
                words = words[2:] if words[0] in ("-c", "--configuration", "--scratch-path") else words[1:]
        elif os.path.basename(word) in ("sh", "bash") and "-c" in words[1:-1]:
            found = []
            for inner_env, argv in shell_commands(words[words.index("-c") + 1]):
                found.append(({**env, **inner_env}, argv))
            return found
        else:
            break
    if words and is_tokenctl(words[0]):
        return [(env, words[1:])]
    return []


def subcommand_path(argv):
    """The subcommand words (["keys", "list"]), global options skipped."""
    path, i = [], 0
    while i < len(argv) and len(path) < 2:
        word = argv[i]
        if word.startswith("-"):
            i += 2 if word in VALUE_GLOBALS and not path else 1
            continue
        path.append(word)
        if path[0] not in GROUPS:
            break
        i += 1
    return path


def complete(argv):
    """Why argv is not a complete command, or None."""
    if any("..." in w or "\u2026" in w for w in argv):
        return "elided arguments (...)"
    if any(w in ("--generate-completion-script", "--help", "-h") for w in argv):
        return None
    path = subcommand_path(argv)
    if not path:
        return "no subcommand"
    if path[0] in GROUPS and len(path) < 2:
        return f"'{path[0]}' without its subcommand"
    return None


# Synopsis syntax: words, [optional] groups, a|b alternatives (in a word, or between options).

def synopsis_tree(text):
    tokens = re.findall(r"\[|\]|(?<=\s)\|(?=\s)|[^\s\[\]]+", " " + text + " ")
    position = 0

    def sequence(closing):
        nonlocal position
        items = []
        while position < len(tokens):
            token = tokens[position]
            position += 1
            if token == "[":
                items.append(("opt", sequence("]")))
            elif token == "]":
                if closing != "]":
                    raise ValueError(f"unbalanced ] in {text!r}")
                return group(items)
            elif token == "|":
                items.append(("bar",))
            else:
                items.append(("word", token.split("|")))
        if closing:
            raise ValueError(f"unclosed [ in {text!r}")
        return group(items)

    def group(items):
        units, i = [], 0                     # an option and its value are one unit
        while i < len(items):
            item = items[i]
            if (item[0] == "word" and item[1][0].startswith("-") and i + 1 < len(items)
                    and items[i + 1][0] == "word" and not items[i + 1][1][0].startswith("-")):
                units.append(("seq", [item, items[i + 1]]))
                i += 2
            else:
                units.append(item)
                i += 1
        merged = []                          # unit | unit | unit
        for unit in units:
            if merged and merged[-1] == ("bar",):
                merged.pop()
                previous = merged.pop()
                choices = previous[1] if previous[0] == "alt" else [previous]
                merged.append(("alt", choices + [unit]))
            else:
                merged.append(unit)
        if ("bar",) in merged:
            raise ValueError(f"dangling | in {text!r}")
        return ("seq", merged)

    return sequence(None)


def synopsis_forms(text):
    """[(form name, words)] for one synopsis line: minimal, full, then each other alternative."""
    tree = synopsis_tree(text)
    points = []

    def collect(node):
        if node[0] == "seq":
            for child in node[1]:
                collect(child)
        elif node[0] == "opt":
            collect(node[1])
        elif node[0] == "alt":
            points.append((id(node), len(node[1]), node))
            for child in node[1]:
                collect(child)
        elif node[0] == "word" and len(node[1]) > 1:
            points.append((id(node), len(node[1]), node))

    collect(tree)

    def render(node, optional, choice):
        if node[0] == "seq":
            return [w for child in node[1] for w in render(child, optional, choice)]
        if node[0] == "opt":
            return render(node[1], optional, choice) if optional else []
        if node[0] == "alt":
            return render(node[1][choice.get(id(node), 0)], optional, choice)
        return [node[1][choice.get(id(node), 0)]]

    forms = [("minimal", render(tree, False, {})), ("full", render(tree, True, {}))]
    for key, count, node in points:
        for index in range(1, count):
            words = render(tree, True, {key: index})
            label = " ".join(render(node, True, {key: index}))
            forms.append((f"alternative '{label}'", words))
    unique, seen = [], set()
    for name, words in forms:
        if tuple(words) not in seen:
            seen.add(tuple(words))
            unique.append((name, words))
    return unique


@dataclasses.dataclass
class Extraction:
    entries: list          # Entry, one per invocation to run
    ignored: list          # (line, text, reason): inline code naming tokenctl that is no command
    errors: list           # (line, text, reason): lines that could not be read

    @property
    def found(self):
        """README commands: distinct (line, source) pairs."""
        return sorted({(e.line, e.source) for e in self.entries})


def extract(readme_text):
    lines = readme_text.split("\n")
    entries, ignored, errors = [], [], []
    prose = []                 # the text with code blocks blanked, for inline code
    section = None
    fence = None               # (marker, language, first line number)
    block_lines = []

    def add_synopsis(line_number, source, text, scope_prefix):
        for form, words in synopsis_forms(text):
            if not words or not is_tokenctl(words[0]):
                errors.append((line_number, source, "synopsis does not start with tokenctl"))
                return
            entries.append(Entry(line_number, source, "synopsis", f"{scope_prefix}:{line_number}:{form}",
                                 words[1:], {}, form))

    def finish_block(marker_line, language, body):
        joined = []                # (line number, text), continuation lines joined
        for number, text in body:
            if joined and joined[-1][1].endswith("\\"):
                joined[-1] = (joined[-1][0], joined[-1][1][:-1] + " " + text.strip())
            elif joined and section == "tokenctl" and not language and text[:1].isspace() and text.strip():
                joined[-1] = (joined[-1][0], joined[-1][1] + " " + text.strip())
            else:
                joined.append((number, text))
        block_env = {}
        for number, text in joined:
            if "tokenctl" not in text and not re.match(r"^\s*(Environment=|export\s)", text):
                continue
            stripped = PROMPT.sub("", strip_comment(text)).strip()
            if not stripped:
                continue
            assignment = re.match(r"^(?:Environment=|export\s+)(\w+)=(\S*)$", stripped)
            if assignment:
                block_env[assignment[1]] = assignment[2].strip("\"'")
                continue
            if section == "tokenctl" and not language:
                add_synopsis(number, text.strip(), stripped, "synopsis")
                continue
            try:
                commands = shell_commands(stripped)
            except ValueError as error:
                errors.append((number, text.strip(), f"cannot split as shell words: {error}"))
                continue
            for env, argv in commands:
                entries.append(Entry(number, text.strip(), "block", f"block:{marker_line}", argv,
                                     {**block_env, **env}))

    for number, line in enumerate(lines, 1):
        heading = re.match(r"^## (.*)", line)
        if fence is None and heading:
            section = heading[1].strip().lower()
        opening = re.match(r"^\s*(```+|~~~+)\s*([\w+-]*)", line)
        if fence is None and opening:
            fence = (opening[1], opening[2], number)
            block_lines = []
            prose.append("")
            continue
        if fence is not None:
            if line.strip().startswith(fence[0]) and line.strip().strip(fence[0][0]) == "":
                finish_block(fence[2], fence[1], block_lines)
                fence = None
            else:
                block_lines.append((number, line))
            prose.append("")
            continue
        prose.append(line)
    if fence is not None:
        errors.append((fence[2], fence[0], "code block never closed"))

    text = "\n".join(prose)
    for match in re.finditer(r"(?<!`)`([^`]+)`(?!`)", text):
        code = match[1]
        if "\n\n" in code or "tokenctl" not in code:
            continue
        number = text.count("\n", 0, match.start()) + 1
        code = re.sub(r"\s*\n\s*", " ", code).strip()
        if "[" in code or re.search(r"\w\|\w", code):
            try:
                words = synopsis_forms(code)[0][1]
            except ValueError as error:
                errors.append((number, code, str(error)))
                continue
            commands = unwrap(words)
            if not commands:
                continue
            reason = complete(commands[0][1])
            if reason:
                ignored.append((number, code, reason))
                continue
            add_synopsis(number, code, " ".join(["tokenctl"] + code.split("tokenctl", 1)[1].split()), "inline")
            continue
        try:
            commands = shell_commands(code)
        except ValueError as error:
            errors.append((number, code, f"cannot split as shell words: {error}"))
            continue
        for env, argv in commands:
            reason = complete(argv)
            if reason:
                ignored.append((number, code, reason))
            else:
                entries.append(Entry(number, code, "inline", f"inline:{number}:{len(entries)}", argv, env))
    entries.sort(key=lambda e: e.line)
    return Extraction(entries, ignored, errors)


def classify(entry):
    """("skip", reason), ("offline", why) or ("daemon", None)."""
    if entry.text in SKIP:
        return "skip", SKIP[entry.text]
    if any(w in ("--generate-completion-script", "--help", "-h") for w in entry.argv):
        return "offline", "argument parser only"
    path = subcommand_path(entry.argv)
    if path and path[0] in OFFLINE:
        return "offline", f"tokenctl {path[0]}"
    return "daemon", None


# ---------------------------------------------------------------------------------------------
# Running


class Unsubstitutable(Exception):
    pass


class Daemon:
    """A tokend on a temporary state directory named tokend-data, so that tokenctl's default
    socket (./tokend-data/tokend.sock, relative to the commands' working directory) is its."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="readme-commands-"))
        self.state = self.root / "tokend-data"
        self.socket = self.state / "tokend.sock"
        self.log_path = self.root / "tokend.log"
        self.process = None

    def start(self):
        atexit.register(self.stop)            # also on an interrupted run
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [TOKEND_BIN, "--state-dir", str(self.state), "--socket", str(self.socket)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.root, env=clean_env())
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tokend exited with {self.process.returncode}:\n{self.log()}")
            if self.socket.is_socket():
                return
            time.sleep(0.05)
        raise RuntimeError(f"tokend did not create {self.socket} within 15 s:\n{self.log()}")

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        """Idempotent: ends tokend (TERM, then KILL after 10 s) and removes the directory."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)


def clean_env():
    """The environment without TOKEND_* (TOKEND_SOCKET would override tokenctl's default)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TOKEND_")}


class Runner:
    """Substitutes real values into README commands and runs them."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.files = daemon.root / "files"
        self.files.mkdir()
        self.scopes = {}
        self.counter = 0
        self.keys = {}             # alg: key file, for tokenctl jwt
        self.offline_tokens = {}   # alg: a JWT signed with that key

    def ctl(self, argv):
        result = subprocess.run([TOKENCTL_BIN] + argv, cwd=self.daemon.root, env=clean_env(), stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        if result.returncode != 0:
            raise RuntimeError(f"fixture command tokenctl {' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def key(self, alg):
        if alg not in self.keys:
            path = self.files / f"{alg}.key"
            self.ctl(["jwt", "keygen", "--alg", alg, "--out", str(path)])
            self.keys[alg] = str(path)
        return self.keys[alg]

    def offline_token(self, alg):
        """A JWT for tokenctl jwt verify/decode, with the iss and aud the options below ask for."""
        if alg not in self.offline_tokens:
            now = int(time.time())
            claims = {"sub": SUBJECT, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 3600}
            self.offline_tokens[alg] = self.ctl(["jwt", "sign", "--alg", alg, "--key", self.key(alg),
                                                 "--claims", json.dumps(claims)]).strip()
        return self.offline_tokens[alg]

    def offline_kid(self, alg):
        """The kid in the header of `offline_token(alg)`."""
        decoded = json.loads(self.ctl(["jwt", "decode", self.offline_token(alg)]))
        return decoded["header"]["kid"]

    def fresh(self, stem):
        self.counter += 1
        return f"{stem}-{self.counter}"

    def login(self, scope, mode, bound):
        """A login issued for this scope (a README code block, or one command)."""
        cache = self.scopes.setdefault(scope, {})
        key = (mode, bound)
        if key not in cache:
            argv = ["issue", "--json", "--subject", SUBJECT, "--mode", mode]
            if bound:
                argv += ["--fingerprint", FINGERPRINT]
            cache[key] = json.loads(self.ctl(argv))
        return cache[key]

    def token_for(self, placeholder, words, path, scope, bound):
        """The value of a token placeholder for the subcommand `path`."""
        if path[:1] == ["jwt"]:
            return self.offline_token(self.alg_for(words, path))
        if placeholder == "REFRESH_TOKEN" or path[:1] == ["refresh"]:
            return self.login(scope, "pair", bound)["refresh_token"]
        return self.login(scope, "session", bound)["token"]

    def alg_for(self, words, path):
        if "--alg" in words:
            value = words[words.index("--alg") + 1]
            if value in ALGORITHMS:
                return value
        return "ES256" if path == ["jwt", "jwk"] else "HS256"   # a public JWK needs a key pair

    def flag_value(self, flag, placeholder, words, path, scope, bound):
        d = self.daemon
        values = {
            "--socket": lambda: str(d.socket),
            "--subject": lambda: SUBJECT,
            "--fingerprint": lambda: FINGERPRINT,
            "--claims": lambda: (json.dumps({"sub": SUBJECT, "exp": int(time.time()) + 3600})
                                 if path[:1] == ["jwt"] else '{"role":"reader"}'),
            "--audience": lambda: AUDIENCE,
            "--aud": lambda: AUDIENCE,
            "--iss": lambda: ISSUER,
            "--typ": lambda: "JWT",
            # jwt sign's own choice, read back from the token it signed, so that jwt verify
            # --kid K names the key that signed the token it checks.
            "--kid": lambda: self.offline_kid(self.alg_for(words, path)),
            "--idempotency-key": lambda: self.fresh("readme-idempotency"),
            "--ttl": lambda: "10m",
            "--refresh-ttl": lambda: "1h",
            "--max-lifetime": lambda: "2h",
            "--token": lambda: self.login(scope, "session", False)["token"],
            "--session": lambda: self.login(scope, "session", False)["session_id"],
            "--limit": lambda: "10",
            "--count": lambda: "1",
            "--interval": lambda: "0.2",
            "--now": lambda: str(int(time.time())),
            "--alg": lambda: self.alg_for(words, path),
            "--key": lambda: self.key(self.alg_for(words, path)),
            "--out": lambda: str(self.files / self.fresh("out")),
            "--state-dir": lambda: str(d.state),
            "--token-file": lambda: self.write_file(self.token_for("TOKEN", words, path, scope, bound)),
            "--fingerprint-file": lambda: self.write_file(FINGERPRINT),
        }
        if flag not in values:
            raise Unsubstitutable(f"no value for {placeholder} after {flag}")
        return values[flag]()

    def write_file(self, content):
        path = self.files / self.fresh("value")
        path.write_text(content + "\n")
        return str(path)

    def substitute(self, entry):
        """(argv, env, stdin) to run for entry."""
        d = self.daemon

        def expand(word):
            word = re.sub(r"(^|=)/run/tokend/tokend\.sock$", lambda m: m[1] + str(d.socket), word)
            word = re.sub(r"(^|=)/var/lib/tokend(?=/|$)", lambda m: m[1] + str(d.state), word)

            def variable(match):
                name = match[1] or match[2]
                if name not in SHELL_VARIABLES:
                    raise Unsubstitutable(f"unknown shell variable ${name}")
                return SHELL_VARIABLES[name](self)
            return re.sub(r"\$\{(\w+)\}|\$(\w+)", variable, word)

        words = [expand(w) for w in entry.argv]
        env = {k: expand(v) for k, v in entry.env.items()}
        path = subcommand_path(words)
        bound = "--fingerprint" in words or "--fingerprint-file" in words
        out, stdin, i = [], None, 0

        def value_of(flag, value):
            nonlocal stdin
            if value == "-":       # read from stdin
                stdin = FINGERPRINT if flag == "--fingerprint" else self.token_for("TOKEN", words, path, entry.scope, bound)
            elif is_placeholder(value):
                return self.flag_value(flag, value, words, path, entry.scope, bound)
            return value

        while i < len(words):
            word = words[i]
            if word.startswith("--") and "=" in word:
                flag, value = word.split("=", 1)
                out.append(f"{flag}={value_of(flag, value)}")
            elif word.startswith("-") and word != "-" and word not in VALUELESS and i + 1 < len(words):
                out += [word, value_of(word, words[i + 1])]
                i += 1
            elif word == "-":
                stdin = self.token_for("TOKEN", words, path, entry.scope, bound)
                out.append(word)
            elif is_placeholder(word):
                if word not in ("TOKEN", "REFRESH_TOKEN"):
                    raise Unsubstitutable(f"no value for the argument {word}")
                out.append(self.token_for(word, words, path, entry.scope, bound))
            else:
                out.append(word)
            i += 1
        out = adjust(out, path)
        return out, env, stdin


def is_placeholder(word):
    return bool(re.fullmatch(r"[A-Z][A-Z0-9_]*", word)) and word not in ALGORITHMS


def adjust(argv, path):
    """Bounds for commands that would run on: top gets --count 1 --interval 0.2; bench a few
    hundred requests or 300ms."""
    def set_option(argv, names, value):
        for name in names:
            if name in argv:
                index = argv.index(name)
                return argv[:index + 1] + [value] + argv[index + 2:]
        return argv + [names[0], value]

    if path == ["top"]:
        argv = set_option(set_option(argv, ["--count"], "1"), ["--interval"], "0.2")
    if path == ["bench"]:
        if "--duration" in argv:
            argv = set_option(argv, ["--duration"], "300ms")
        elif not any(n in argv for n in ("-n", "--requests")):
            argv = argv + ["-n", "200"]
    return argv


@dataclasses.dataclass
class Outcome:
    entry: Entry
    status: str            # "ok", "skip", "fail"
    detail: str = ""
    ran: list = dataclasses.field(default_factory=list)     # the argv run, tokens abbreviated


def run_entry(runner, entry):
    kind, reason = classify(entry)
    if kind == "skip":
        return Outcome(entry, "skip", reason)
    try:
        argv, env, stdin = runner.substitute(entry)
    except Unsubstitutable as error:
        return Outcome(entry, "fail", f"cannot substitute: {error}")
    except RuntimeError as error:
        return Outcome(entry, "fail", f"fixture failed: {error}")
    full_env = {**clean_env(), **env}
    ran = [f"{k}={v}" for k, v in env.items()] + ["tokenctl"] + [w[:12] + "..." if w.startswith("eyJ") else w for w in argv]
    try:
        result = subprocess.run([TOKENCTL_BIN] + argv, cwd=runner.daemon.root, env=full_env,
                                input=stdin if stdin is not None else "", capture_output=True, text=True,
                                timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        return Outcome(entry, "fail", f"no exit within {COMMAND_TIMEOUT} s", ran)
    stderr = result.stderr.strip()
    first_lines = " | ".join(stderr.splitlines()[:2])
    refused_ok = " ".join(entry.source.split()) in EXPECT_REFUSED
    code = result.returncode
    if USAGE_MESSAGES.search(result.stderr):
        return Outcome(entry, "fail", f"exit {code}, usage message: {first_lines}", ran)
    if code == 0 and refused_ok:
        return Outcome(entry, "fail", "exit 0, but README says this is refused", ran)
    if code == 0 or (code == 1 and refused_ok):
        return Outcome(entry, "ok", f"exit {code}" + (f": {first_lines}" if code else ""), ran)
    meaning = {1: "refused", 2: "usage error", 3: "daemon unreachable"}.get(code, "unexpected")
    return Outcome(entry, "fail", f"exit {code} ({meaning}): {first_lines or result.stdout.strip()[:200]}", ran)


def describe(entry):
    form = "" if entry.form == "as written" else f" [{entry.form}: {entry.text}]"
    return f"README.md:{entry.line}: {entry.source}{form}"


# ---------------------------------------------------------------------------------------------
# Tests


class ExtractionTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.extraction = extract(README.read_text())

    def test_readable(self):
        self.assertEqual(self.extraction.errors, [], "README lines that name tokenctl but could not be read")

    def test_found_enough(self):
        found = len(self.extraction.found)
        self.assertGreaterEqual(found, MIN_COMMANDS, "fewer README commands than when this test was written: "
                                "the extraction broke, or README lost commands (then lower MIN_COMMANDS)")

    def test_operating_socket_form_found(self):
        texts = {e.text for e in self.extraction.entries}
        self.assertIn(MUST_FIND, texts)

    def test_shapes(self):
        """Each kind of README command the extraction must handle."""
        texts = {(e.kind, e.text) for e in self.extraction.entries}
        expected = [
            ("block", "tokenctl issue --subject alice --fingerprint '$USER_AGENT'"),   # swift run tokenctl
            ("block", "tokenctl verify TOKEN"),                                        # a$ prompt, comment
            ("block", "tokenctl ping"),                                                # TOKEND_SOCKET=... prefix
            ("block", "tokenctl stats --prometheus"),                                  # ExecStart=/bin/sh -c '...'
            ("block", "tokenctl jwt keygen --alg ES256 --out '/var/lib/tokend/keys/$T-ES256.key'"),  # runuser
            ("inline", "tokenctl keys reload"),                                        # across a line break
            ("inline", "tokenctl --generate-completion-script bash"),                  # redirection dropped
            ("synopsis", "tokenctl revoke --session SID"),                             # a | b | c
            ("synopsis", "tokenctl keys rotate"),                                      # list|jwks|rotate|reload
            ("synopsis", "tokenctl issue --subject S --fingerprint F --mode pair --claims JSON --audience A "
                         "--idempotency-key K --ttl D --refresh-ttl D --max-lifetime D"),
            ("synopsis", "tokenctl store check --state-dir DIR --json"),               # inline synopsis
        ]
        for shape in expected:
            self.assertIn(shape, texts)

    def test_lists_match_readme(self):
        texts = {e.text for e in self.extraction.entries}
        sources = {" ".join(e.source.split()) for e in self.extraction.entries}
        self.assertEqual([t for t in SKIP if t not in texts], [], "SKIP entries no README command matches")
        self.assertEqual([t for t in EXPECT_REFUSED if t not in sources], [],
                         "EXPECT_REFUSED entries no README line matches")

    def test_synopsis_expansion(self):
        forms = synopsis_forms("tokenctl sessions [--subject S] [--limit N] [--all]")
        self.assertEqual([w for _, w in forms], [["tokenctl", "sessions"],
                                                 ["tokenctl", "sessions", "--subject", "S", "--limit", "N", "--all"]])
        forms = [w for _, w in synopsis_forms("tokenctl revoke --token T | --session SID | --subject S")]
        self.assertEqual(forms, [["tokenctl", "revoke", "--token", "T"], ["tokenctl", "revoke", "--session", "SID"],
                                 ["tokenctl", "revoke", "--subject", "S"]])


class ReadmeCommandsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for variable, binary in (("TOKEND_BIN", TOKEND_BIN), ("TOKENCTL_BIN", TOKENCTL_BIN)):
            if not os.access(binary, os.X_OK):
                if os.environ.get(variable):       # as tools/python's tests: a wrong setting is an error
                    raise FileNotFoundError(f"{variable}={binary} is not an executable")
                raise unittest.SkipTest(f"no binary at {binary}; build, or set {variable}")
        cls.extraction = extract(README.read_text())
        cls.daemon = Daemon()
        try:
            cls.daemon.start()
        except Exception:
            cls.daemon.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def test_every_command(self):
        runner = Runner(self.daemon)
        outcomes = [run_entry(runner, entry) for entry in self.extraction.entries]
        failures = [o for o in outcomes if o.status == "fail"]
        skipped = [o for o in outcomes if o.status == "skip"]
        ran = len(outcomes) - len(skipped)
        summary = (f"README commands found: {len(self.extraction.found)} ({len(outcomes)} invocations after "
                   f"synopsis expansion); run: {ran}; skipped: {len(skipped)}; failed: {len(failures)}")
        print("\n" + summary, file=sys.stderr)
        for o in outcomes:
            if o.status == "skip" or os.environ.get("README_COMMANDS_VERBOSE"):
                shown = f"\n      ran: {' '.join(map(shlex.quote, o.ran))}" if o.ran else ""
                print(f"  {o.status}: {describe(o.entry)}: {o.detail}{shown}", file=sys.stderr)
        if self.daemon.process.poll() is not None:
            self.fail(f"tokend exited during the run:\n{self.daemon.log()}")
        if failures:
            self.fail(summary + "\n" + "\n".join(f"{describe(o.entry)}\n    {o.detail}" for o in failures))


def list_extraction():
    extraction = extract(README.read_text())
    for entry in extraction.entries:
        kind, reason = classify(entry)
        print(f"{entry.line:4} {entry.kind:8} {kind:7} {entry.text}" + (f"   ({entry.form})" if entry.kind == "synopsis" else "")
              + (f"   SKIP: {reason}" if kind == "skip" else ""))
    for line, text, reason in extraction.ignored:
        print(f"{line:4} ignored: `{text}`: {reason}")
    for line, text, reason in extraction.errors:
        print(f"{line:4} ERROR: {text}: {reason}")
    print(f"{len(extraction.found)} README commands, {len(extraction.entries)} invocations")


if __name__ == "__main__":
    if sys.argv[1:] == ["--list"]:
        list_extraction()
    else:
        unittest.main()
