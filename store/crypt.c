/*
 * crypt.c — OAuth tokens at rest: AES-256-GCM under a 32-byte master key.
 *
 * The key lives in a file of its own (QBCDC_MASTER_KEY_FILE, default
 * <data dir>/master.key), created with 32 random bytes and mode 0600 when missing.
 * Keeping it beside the data is the embedded default; production puts it on a
 * different volume or secret mount, so that a copy of the LMDB file alone reveals
 * no token.
 *
 * Sealed value: [version 1][nonce 12][tag 16][ciphertext]. The realm id is
 * authenticated as associated data, so a sealed blob moved to another realm's key
 * fails to open instead of handing realm A's tokens to realm B.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "store_internal.h"

#define NONCE_LEN 12
#define TAG_LEN 16

int qbc_store__load_master_key(const char *path, unsigned char key[QBC_MASTER_KEY_LEN])
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 && errno == ENOENT) {
        unsigned char fresh[QBC_MASTER_KEY_LEN];
        if (RAND_bytes(fresh, sizeof(fresh)) != 1)
            return QBC_ESTORE;
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            qbc_log(QBC_LOG_ERROR, "store", "cannot create master key %s: %s", path, strerror(errno));
            return -errno;
        }
        ssize_t w = write(fd, fresh, sizeof(fresh));
        int rc = w == (ssize_t)sizeof(fresh) && fsync(fd) == 0 ? 0 : -EIO;
        close(fd);
        if (rc != 0) {
            unlink(path);
            OPENSSL_cleanse(fresh, sizeof(fresh));
            return rc;
        }
        memcpy(key, fresh, sizeof(fresh));
        OPENSSL_cleanse(fresh, sizeof(fresh));
        qbc_log(QBC_LOG_INFO, "store", "created master key %s (mode 0600)", path);
        return 0;
    }
    if (fd < 0) {
        qbc_log(QBC_LOG_ERROR, "store", "cannot open master key %s: %s", path, strerror(errno));
        return -errno;
    }
    if (fstat(fd, &st) != 0 || st.st_size != QBC_MASTER_KEY_LEN) {
        close(fd);
        qbc_log(QBC_LOG_ERROR, "store", "master key %s must be exactly %d bytes", path, QBC_MASTER_KEY_LEN);
        return QBC_EINVAL;
    }
    if (st.st_mode & 077)
        qbc_log(QBC_LOG_WARN, "store", "master key %s is readable by group or others; chmod 600 it", path);
    ssize_t r = read(fd, key, QBC_MASTER_KEY_LEN);
    close(fd);
    return r == QBC_MASTER_KEY_LEN ? 0 : QBC_EINVAL;
}

int qbc_store__seal(const unsigned char key[QBC_MASTER_KEY_LEN], const char *realm, const unsigned char *plain,
                    size_t len, unsigned char *out, size_t *out_len)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n, ok = c != NULL;
    unsigned char *nonce = out + 1, *tag = out + 1 + NONCE_LEN, *ct = out + 1 + NONCE_LEN + TAG_LEN;

    out[0] = 1;
    ok = ok && RAND_bytes(nonce, NONCE_LEN) == 1;
    ok = ok && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) == 1;
    ok = ok && EVP_EncryptUpdate(c, NULL, &n, (const unsigned char *)realm, (int)strlen(realm)) == 1;
    ok = ok && EVP_EncryptUpdate(c, ct, &n, plain, (int)len) == 1;
    ok = ok && EVP_EncryptFinal_ex(c, ct + n, &n) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok)
        return QBC_ESTORE;
    *out_len = QBC_SEAL_OVERHEAD + len;
    return 0;
}

int qbc_store__open_sealed(const unsigned char key[QBC_MASTER_KEY_LEN], const char *realm, const unsigned char *in,
                           size_t in_len, unsigned char *plain, size_t *plain_len)
{
    EVP_CIPHER_CTX *c;
    int n, ok;

    if (in_len < QBC_SEAL_OVERHEAD || in[0] != 1)
        return QBC_EMALFORMED;
    size_t len = in_len - QBC_SEAL_OVERHEAD;
    if ((c = EVP_CIPHER_CTX_new()) == NULL)
        return QBC_ESTORE;
    ok = EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, in + 1) == 1;
    ok = ok && EVP_DecryptUpdate(c, NULL, &n, (const unsigned char *)realm, (int)strlen(realm)) == 1;
    ok = ok && EVP_DecryptUpdate(c, plain, &n, in + QBC_SEAL_OVERHEAD, (int)len) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)(in + 1 + NONCE_LEN)) == 1;
    ok = ok && EVP_DecryptFinal_ex(c, plain + n, &n) == 1; /* fails unless the tag verifies */
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        OPENSSL_cleanse(plain, len);
        return QBC_EAUTH;
    }
    *plain_len = len;
    return 0;
}
