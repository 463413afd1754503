"""Interop peer for TokenJWT's tests, on Python's joserfc (an independent JOSE library).

  joserfc_interop.py verify ALG KEYFILE TOKEN   verify a token we signed; print its claims as JSON
  joserfc_interop.py sign ALG CLAIMS            make a key, sign CLAIMS; print {"token", "key"}
                                                (key: PEM public key, or base64url secret for HS*)
Exit 0 on success, 1 when joserfc refuses the token.
"""
import base64
import json
import sys
import warnings

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

warnings.simplefilter("ignore")  # joserfc warns that "EdDSA" is deprecated by RFC 9864


def key_class(alg):
    return {"HS256": OctKey, "ES256": ECKey, "EdDSA": OKPKey, "Ed25519": OKPKey, "RS256": RSAKey}[alg]


def verify(alg, key_file, token):
    with open(key_file, "rb") as f:
        data = f.read()
    key = key_class(alg).import_key(data)
    try:
        decoded = jwt.decode(token, key, algorithms=[alg])
        jwt.JWTClaimsRegistry(exp={"essential": True}).validate(decoded.claims)
    except (JoseError, ValueError) as error:
        print(f"refused: {error}")
        return 1
    print(json.dumps({"header": decoded.header, "claims": decoded.claims}))
    return 0


def sign(alg, claims):
    if alg == "HS256":
        secret = __import__("os").urandom(32)
        key = OctKey.import_key(secret)
        exported = base64.urlsafe_b64encode(secret).rstrip(b"=").decode()
    else:
        key = {"ES256": lambda: ECKey.generate_key("P-256"),
               "EdDSA": lambda: OKPKey.generate_key("Ed25519"),
               "Ed25519": lambda: OKPKey.generate_key("Ed25519"),
               "RS256": lambda: RSAKey.generate_key(2048)}[alg]()
        exported = key.as_pem(private=False).decode()
    token = jwt.encode({"alg": alg}, json.loads(claims), key, algorithms=[alg])
    print(json.dumps({"token": token, "key": exported}))
    return 0


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "verify":
        sys.exit(verify(*sys.argv[2:5]))
    if command == "sign":
        sys.exit(sign(*sys.argv[2:4]))
    sys.exit(2)
