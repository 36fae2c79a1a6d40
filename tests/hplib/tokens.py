"""The seed's tokens file (`hotplate seed --tokens PATH`): one line per demo
user, kind<TAB>id<TAB>token. Customers come first, most active first, with
their user id; then one owner per restaurant, with the restaurant's id. The
database holds only each token's SHA-256 (users.token_hash).

Standard library only (the load tests import it).
"""

import hashlib


def read_tokens(path):
    """{kind: [(id, token)...]} in file order; blank lines and # comments are
    skipped. Raises ValueError on a line that is not kind<TAB>id<TAB>token."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise ValueError("%s line %d is not kind<TAB>id<TAB>token: %r" % (path, n, line))
            out.setdefault(parts[0], []).append((int(parts[1]), parts[2]))
    return out


def token_hash(token):
    """What users.token_hash holds for a token."""
    return hashlib.sha256(token.encode()).digest()
