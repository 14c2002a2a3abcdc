/*
 * test_sign.c — delivery/sign.c: the Standard Webhooks signature of the specification's
 * published example (secret, id, timestamp, body -> v1,g0hM...), secrets generated and
 * decoded, and what a malformed secret is.
 */
#include <stdio.h>
#include <string.h>
#include "delivery.h"
#include "../../tap.h"

int main(void)
{
    unsigned char key[QBC_WHSEC_KEY_MAX];
    size_t key_len = 0;
    char sig[QBC_WEBHOOK_SIG_BUFSZ];
    const char *body = "{\"test\": 2432232314}";

    is_int(qbc_delivery_secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key, &key_len), 0,
           "the example secret decodes");
    is_int(key_len, 24, "to 24 bytes");
    qbc_delivery_sign(key, key_len, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), sig);
    is_str(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "the specification's example signature");
    qbc_delivery_sign(key, key_len, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, strlen(body), sig);
    ok(strcmp(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") != 0, "another timestamp signs differently");
    qbc_delivery_sign(key, key_len, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, "{\"test\": 2432232315}", 20, sig);
    ok(strcmp(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") != 0, "another body signs differently");

    is_int(qbc_delivery_secret_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key, &key_len), 0, "the prefix is optional");
    ok(qbc_delivery_secret_key("whsec_", key, &key_len) == QBC_EMALFORMED, "an empty secret is malformed");
    ok(qbc_delivery_secret_key("whsec_c2hvcnQ=", key, &key_len) == QBC_EMALFORMED, "a 5-byte key is too short");
    ok(qbc_delivery_secret_key("whsec_not base64!", key, &key_len) == QBC_EMALFORMED, "not base64");
    char longer[200] = "whsec_";
    for (int i = 0; i < 120; i++)
        strcat(longer, "A");
    ok(qbc_delivery_secret_key(longer, key, &key_len) == QBC_EMALFORMED, "a 90-byte key is too long");

    char a[QBC_WHSEC_BUFSZ], b[QBC_WHSEC_BUFSZ];
    is_int(qbc_delivery_secret_new(a), 0, "a new secret");
    is_int(qbc_delivery_secret_new(b), 0, "another");
    ok(strncmp(a, "whsec_", 6) == 0 && strlen(a) == 6 + 44, "whsec_ + base64 of 32 bytes");
    ok(strcmp(a, b) != 0, "two secrets differ");
    is_int(qbc_delivery_secret_key(a, key, &key_len), 0, "a new secret decodes");
    is_int(key_len, 32, "to its 32 bytes");
    return done_testing();
}
