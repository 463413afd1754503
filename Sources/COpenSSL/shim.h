#ifndef TOKEND_COPENSSL_SHIM_H
#define TOKEND_COPENSSL_SHIM_H

// The OpenSSL 3 headers tokend uses, plus `static inline` shims for the few entry points
// that are macros or variadic functions and therefore do not import into Swift.

// tokend uses the low-level SHA-2 contexts for HMAC: they copy by value, where the EVP
// layer allocates and dispatches through providers for every message (measured: that
// overhead exceeded the hash itself for 300-byte tokens). They are deprecated, not removed.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

static inline void tokend_openssl_free(void *pointer) { OPENSSL_free(pointer); }

static inline long tokend_bio_get_mem_data(BIO *bio, char **data) {
    return BIO_get_mem_data(bio, data);
}

static inline EVP_PKEY *tokend_generate_ec_p256(void) { return EVP_EC_gen("P-256"); }

static inline EVP_PKEY *tokend_generate_ed25519(void) {
    return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
}

static inline EVP_PKEY *tokend_generate_rsa(unsigned int bits) {
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

static inline int tokend_pkey_id_ec(void) { return EVP_PKEY_EC; }
static inline int tokend_pkey_id_rsa(void) { return EVP_PKEY_RSA; }
static inline int tokend_pkey_id_ed25519(void) { return EVP_PKEY_ED25519; }

static inline int tokend_selection_keypair(void) { return EVP_PKEY_KEYPAIR; }
static inline int tokend_selection_public_key(void) { return EVP_PKEY_PUBLIC_KEY; }

#endif
