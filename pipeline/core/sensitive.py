"""Files that look like credentials. A review must not ship a repository's secrets to a third
party, so these are skipped (``SecretFile``) unless the job sets ``inputs.skip_secrets = false``.

Two checks: by name before a file is opened (``.env``, private keys, keystores, ...), and by
content once read (a PEM private key block, an AWS access key id or secret key, an API token
with a well-known prefix, a token in ``.npmrc``).
"""

from __future__ import annotations

import re

_SECRET_NAME = re.compile(
    r"""(?ix)^(?:
        \.env(?:\..+)? | .+\.env                      # dotenv files, and prod.env and the like
      | id_(?:rsa|dsa|ecdsa|ed25519)(?:_sk)?          # ssh private keys (not the .pub halves)
      | .+\.(?:pem|key|p12|pfx|keystore|jks|ppk|kdbx|gpg)
      | credentials.* | .+[-_.]credentials(?:\..+)?
      | [._]netrc | \.git-credentials | \.htpasswd
      | secrets?\..+
    )$""",
)

_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
# AWS access key ids; the documentation's example ids end in EXAMPLE and are let through.
_AWS_KEY_ID = re.compile(
    r"(?<![A-Z0-9])(?:AKIA|ASIA)(?![0-9A-Z]{9}EXAMPLE)[0-9A-Z]{16}(?![A-Z0-9])"
)
# An AWS secret access key is 40 characters of base64 with no prefix of its own: found only
# where it is assigned to a name that says what it is. The documentation's example is let through.
_AWS_SECRET = re.compile(
    r"""(?i)aws_?secret_?(?:access_?)?key["']?\s*[:=]\s*["']?"""
    r"(?![A-Za-z0-9/+]{30}EXAMPLEKEY)[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
)
# API tokens whose prefix says what they are: Anthropic, GitHub, Slack, Google. One counts
# only where no letter, digit, _ or - comes before it, which is checked in code: a look-behind
# tried at every position would make searching a large file several times slower.
_TOKEN = re.compile(
    r"""(?x)
        sk-ant-[a-z]+\d*-[A-Za-z0-9_-]{20,}
      | gh[pousr]_[A-Za-z0-9]{36} | github_pat_[A-Za-z0-9_]{40,}
      | xox[abprs]-[A-Za-z0-9-]{10,}
      | AIza[0-9A-Za-z_-]{35}
    """
)
_TOKEN_PREFIX = re.compile(r"sk-ant-|gh[pousr]_|github_pat_|xox[abprs]-|AIza")
_TOKEN_BEFORE = re.compile(r"[A-Za-z0-9_-]")
# Registry config files are fine to read unless they hold a token or password.
_TOKEN_RC = {".npmrc", ".pypirc", ".yarnrc", ".yarnrc.yml", ".gemrc"}
_RC_SECRET = re.compile(r"(?im)^\s*[^#;\n]*(?:_auth(?:token)?|password|token)\w*\s*[=:]\s*\S")


def secret_by_name(name: str) -> str | None:
    """Why a file name looks like credentials, or None."""
    if _SECRET_NAME.match(name):
        return "its name is one credentials are kept under"
    return None


def secret_by_content(name: str, text: str) -> str | None:
    """Why a file's text looks like credentials, or None."""
    if _PRIVATE_KEY.search(text):
        return "it contains a private key (-----BEGIN ... PRIVATE KEY-----)"
    if _AWS_KEY_ID.search(text):
        return "it contains what looks like an AWS access key id (AKIA...)"
    if _AWS_SECRET.search(text):
        return "it assigns what looks like an AWS secret access key"
    for token in _TOKEN.finditer(text):
        start = token.start()
        if start == 0 or not _TOKEN_BEFORE.match(text, start - 1):
            prefix = _TOKEN_PREFIX.match(text, start)
            return (
                f"it contains what looks like an API token ({prefix.group() if prefix else ''}...)"
            )
    if name in _TOKEN_RC and _RC_SECRET.search(text):
        return f"it is a {name} holding a token or password"
    return None
