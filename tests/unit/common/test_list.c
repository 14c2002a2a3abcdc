/*
 * test_list.c — common/list.c: walking, looking up and appending to comma-separated lists.
 */
#include <string.h>
#include "common.h"
#include "../../tap.h"

int main(void)
{
    char got[64] = "";
    const char *e;
    size_t n;
    for (const char *p = "Invoice,,Bill,"; (p = qbc_list_next(p, &e, &n)) != NULL;)
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "[%.*s]", (int)n, e);
    is_str(got, "[Invoice][][Bill]", "entries in order, an empty one kept, a trailing comma ends the list");
    ok(qbc_list_next("", &e, &n) == NULL, "an empty list has no entry");
    ok(qbc_list_has("981,982,1000", "982") && qbc_list_has("981,982,1000", "1000"), "has: middle and last");
    ok(!qbc_list_has("981,982,1000", "98") && !qbc_list_has("981,982,1000", "100"), "has: no prefix matches");
    ok(!qbc_list_has("", "x"), "has: nothing in an empty list");
    char buf[12] = "";
    ok(qbc_list_add(buf, sizeof(buf), "Bill") == 0 && qbc_list_add(buf, sizeof(buf), "Item") == 0, "add two");
    is_str(buf, "Bill,Item", "comma-separated");
    is_int(qbc_list_add(buf, sizeof(buf), "Vendor"), -1, "one that does not fit: -1");
    is_str(buf, "Bill,Item", "and the list unchanged");
    ok(qbc_list_add(buf, sizeof(buf), "A") == 0 && strcmp(buf, "Bill,Item,A") == 0, "one that fits exactly");
    return done_testing();
}
