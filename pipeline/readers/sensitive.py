"""Files that look like credentials. A review must not ship a repository's secrets to a third
party, so these are skipped (``SecretFile``) unless the job sets ``inputs.skip_secrets = false``.

Two checks: by name before a file is opened (``.env``, private keys, keystores, ...), and by
content once read (a PEM private key block, an AWS access key id, a token in ``.npmrc``).
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
    if name in _TOKEN_RC and _RC_SECRET.search(text):
        return f"it is a {name} holding a token or password"
    return None
