/*
 * test_buf.c — common/buf.c: appends that grow and stay NUL-terminated, the cap
 * (nothing appended past it; the write callback then answers short, which fails
 * a libcurl transfer), printf appends, and freeing.
 */
#include <string.h>
#include "common.h"
#include "../../tap.h"

int main(void)
{
    qbc_buf_t b = {0};
    ok(qbc_buf_append(&b, "", 0) == 0 && b.data != NULL && b.data[0] == '\0', "an empty append still terminates");
    char chunk[3000];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 100; i++)
        qbc_buf_append(&b, chunk, sizeof(chunk));
    is_int(b.len, 300000, "100 appends of 3,000 bytes");
    ok(b.cap > b.len && b.data[b.len] == '\0', "NUL-terminated after the bytes");
    ok(b.data[0] == 'x' && b.data[b.len - 1] == 'x', "the bytes kept");
    qbc_buf_free(&b, 1);
    ok(b.data == NULL && b.len == 0 && b.cap == 0, "freed and empty");

    qbc_buf_t c = {.max = 10};
    is_int(qbc_buf_write_cb("12345", 1, 5, &c), 5, "the write callback takes 5 bytes");
    is_int(qbc_buf_write_cb("67890", 5, 1, &c), 5, "and 5 more, up to the cap");
    is_int(qbc_buf_write_cb("a", 1, 1, &c), 0, "one byte past the cap: a short answer (the transfer fails)");
    is_str(c.data, "1234567890", "nothing past the cap was appended");
    ok(qbc_buf_append(&c, "x", (size_t)-1) == -1, "an absurd length is refused");
    qbc_buf_free(&c, 0);

    qbc_buf_t d = {0};
    for (int i = 0; i < 500; i++)
        qbc_buf_printf(&d, "%s %d\n", "line", i);
    ok(d.len > 4000 && strncmp(d.data, "line 0\nline 1\n", 14) == 0, "printf appends, growing as needed");
    ok(strcmp(d.data + d.len - 9, "line 499\n") == 0 && d.data[d.len] == '\0', "up to the last, terminated");
    qbc_buf_free(&d, 0);
    qbc_buf_t e = {.max = 8};
    is_int(qbc_buf_printf(&e, "%d", 1234567), 0, "printf within the cap");
    is_int(qbc_buf_printf(&e, "%d", 89), -1, "printf past the cap: refused");
    is_str(e.data, "1234567", "and nothing of it appended");
    qbc_buf_free(&e, 0);
    return done_testing();
}
