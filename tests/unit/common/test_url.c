/*
 * test_url.c — common/url.c: percent-encoding.
 */
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
    return done_testing();
}
