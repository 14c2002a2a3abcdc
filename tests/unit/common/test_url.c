/*
 * test_url.c — common/url.c: percent-encoding and decoding.
 */
#include <string.h>
#include "common.h"
#include "../../tap.h"

int main(void)
{
    char out[64];

    is_int(qbc_url_encode("abcXYZ019-_.~", out, sizeof(out)), 13, "unreserved characters pass");
    is_str(out, "abcXYZ019-_.~", "unchanged");
    qbc_url_encode("http://127.0.0.1:8080/oauth/callback", out, sizeof(out));
    is_str(out, "http%3A%2F%2F127.0.0.1%3A8080%2Foauth%2Fcallback", "a redirect URI");
    qbc_url_encode("a b+c&d=e%", out, sizeof(out));
    is_str(out, "a%20b%2Bc%26d%3De%25", "space, plus, ampersand, equals, percent");
    qbc_url_encode("\xc3\xa9", out, sizeof(out));
    is_str(out, "%C3%A9", "UTF-8 bytes one by one, upper-case hex");
    is_int(qbc_url_encode("abcdef", out, 4), 0, "never writes past outsz (needs room for a %XX and the NUL)");
    is_str(out, "", "and stays NUL-terminated");
    is_int(qbc_url_encode("////", out, 7), 3, "stops before an escape that would not fit (7 bytes: one %XX, not two)");
    is_str(out, "%2F", "with what fitted");
    is_int(qbc_url_encode("", out, sizeof(out)), 0, "empty input");

    /* decoding */
    size_t n = 99;
    const char *enc = "http%3A%2F%2F127.0.0.1%3A8080%2Foauth%2Fcallback";
    is_int(qbc_url_decode(enc, strlen(enc), out, sizeof(out), &n), 0, "decode a redirect URI");
    is_str(out, "http://127.0.0.1:8080/oauth/callback", "back to the original");
    is_int(n, 36, "its length");
    qbc_url_decode("a+b%20c%2b", 10, out, sizeof(out), NULL);
    is_str(out, "a b c+", "'+' is a space, %2b a plus, lower-case hex accepted");
    qbc_url_decode("100%", 4, out, sizeof(out), NULL);
    is_str(out, "100%", "a '%' at the end stays");
    qbc_url_decode("%zz%4", 5, out, sizeof(out), NULL);
    is_str(out, "%zz%4", "'%' without two hex digits stays");
    is_int(qbc_url_decode("%41%42%43", 9, out, sizeof(out), &n), 0, "several escapes");
    ok(n == 3 && strcmp(out, "ABC") == 0, "ABC");
    char small[4];
    is_int(qbc_url_decode("abcd", 4, small, sizeof(small), &n), QBC_ETOOBIG, "a value too long is reported");
    ok(n == 3 && strcmp(small, "abc") == 0, "with what fitted, NUL-terminated");
    is_int(qbc_url_decode("abc", 3, small, sizeof(small), &n), 0, "exactly fitting is fine");
    is_int(qbc_url_decode("", 0, small, sizeof(small), &n), 0, "empty value");
    ok(n == 0 && small[0] == '\0', "decodes to an empty string");
    char enc2[64], dec[64];
    const char *round = "state=a b&c/d?e%f+g~h";
    qbc_url_encode(round, enc2, sizeof(enc2));
    qbc_url_decode(enc2, strlen(enc2), dec, sizeof(dec), NULL);
    is_str(dec, round, "encode then decode is the identity");
    return done_testing();
}
