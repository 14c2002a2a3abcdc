/*
 * job.c — store jobs bound to a request: operator writes (realm tokens, disconnects,
 * redrives, backfills, CDC requests) and health probes.
 *
 * A job is queued for the store's writer and answered when it comes back, on the loop
 * thread. The request may be gone by then (the client hung up): the guard, which lives
 * in the request's pool, tells the job, and the answer is dropped.
 */
#include <stdlib.h>
#include <openssl/crypto.h>
#include "api_internal.h"

static void on_guard_dispose(void *p)
{
    req_guard_t *g = p;
    if (g->job != NULL)
        g->job->guard = NULL; /* the connection went away: answer nobody */
}

/* store writer thread: hand the finished job back to the loop (must not block) */
static void job_done_in_store(qbc_store_job_t *job)
{
    api_job_t *j = H2O_STRUCT_FROM_MEMBER(api_job_t, job, job);
    h2o_multithread_send_message(&j->api->commits, &j->msg);
}

api_job_t *qbc_api__job_new(qbc_api_t *api, h2o_req_t *req, qbc_job_kind_t kind)
{
    api_job_t *j = qbc_calloc(1, sizeof(*j));
    if (kind != QBC_JOB_PING)
        j->a = qbc_calloc(1, sizeof(*j->a));
    j->api = api;
    j->job.kind = kind;
    j->job.on_commit = job_done_in_store;
    j->job.received_ns = qbc_now_ns();
    j->start_mono_ns = qbc_mono_ns();
    j->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*j->guard), on_guard_dispose);
    j->guard->req = req;
    j->guard->job = j;
    return j;
}

void qbc_api__job_free(api_job_t *j)
{
    if (j->guard != NULL)
        j->guard->job = NULL;
    if (j->a != NULL) {
        if (j->a->tokens != NULL) {
            OPENSSL_cleanse(j->a->tokens, sizeof(*j->a->tokens));
            free(j->a->tokens);
        }
        free(j->a);
    }
    free(j);
}

int qbc_api__submit(qbc_api_t *api, api_job_t *j)
{
    int rc = qbc_store_submit(api->store, &j->job);
    if (rc == 0)
        api->inflight++;
    return rc;
}

/* loop thread: every finished job arrives here and goes to the file that answers its kind */
static void on_commit_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *msg = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        api_job_t *j = H2O_STRUCT_FROM_MEMBER(api_job_t, msg, msg);
        h2o_req_t *req = j->guard != NULL ? j->guard->req : NULL;
        h2o_linklist_unlink(&msg->link);
        j->api->inflight--;
        switch (j->job.kind) {
        case QBC_JOB_REALM:
            qbc_api__realm_answer(j, req);
            break;
        case QBC_JOB_REDRIVE:
            qbc_api__redrive_answer(j, req);
            break;
        case QBC_JOB_BACKFILL:
        case QBC_JOB_CDC_REQUEST:
            qbc_api__admin_job_answer(j, req);
            break;
        default:
            qbc_api__health_answer(j, req);
            break;
        }
        qbc_api__job_free(j);
    }
}

void qbc_api__jobs_init(qbc_api_t *api)
{
    h2o_multithread_register_receiver(api->ctx.queue, &api->commits, on_commit_messages);
}

void qbc_api__jobs_dispose(qbc_api_t *api)
{
    h2o_multithread_unregister_receiver(api->ctx.queue, &api->commits);
}
