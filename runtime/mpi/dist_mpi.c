/* dist_mpi.c: the Open MPI backend of dist.h, linked into executables compiled with `lathe compile --mpi`
   (liblathe_rt_mpi.a, with -lmpi). Nonblocking collectives only, so that dist.c can wait with a deadline and
   keep backward running while gradients are reduced. Errors return instead of aborting (MPI_ERRORS_RETURN),
   so that they reach the user as messages. */
#include "../dist.h"

#include <mpi.h>
#include <stdlib.h>

static bool mpi_launched(void) {
    /* mpirun (ORTE or PRRTE) sets these; started alone, the executable never initializes MPI */
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK");
}

static int mpi_fail(int rc, const char *what, RtErr *e) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
        len = snprintf(text, sizeof text, "error %d", rc);
    return rt_errf(e, "MPI: %s failed: %.*s", what, len, text);
}

static int mpi_init(int *rank, int *size, RtErr *e) {
    int provided, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS)
        return rt_errf(e, "MPI: MPI_Init_thread failed (error %d)", rc);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if ((rc = MPI_Comm_rank(MPI_COMM_WORLD, rank)) != MPI_SUCCESS)
        return mpi_fail(rc, "MPI_Comm_rank", e);
    if ((rc = MPI_Comm_size(MPI_COMM_WORLD, size)) != MPI_SUCCESS)
        return mpi_fail(rc, "MPI_Comm_size", e);
    return RT_OK;
}

static void mpi_finalize(void) {
    int done = 0;
    MPI_Finalized(&done);
    if (!done)
        MPI_Finalize();
}

static int mpi_iallreduce(void *buf, int count, RtDistType t, void **req, RtErr *e) {
    MPI_Request *r = malloc(sizeof *r);
    if (!r)
        return rt_errf(e, "out of memory");
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, count, t == RT_DIST_F64 ? MPI_DOUBLE : MPI_FLOAT, MPI_SUM,
                            MPI_COMM_WORLD, r);
    if (rc != MPI_SUCCESS) {
        free(r);
        return mpi_fail(rc, "MPI_Iallreduce", e);
    }
    *req = r;
    return RT_OK;
}

static int mpi_ibcast(void *buf, int bytes, void **req, RtErr *e) {
    MPI_Request *r = malloc(sizeof *r);
    if (!r)
        return rt_errf(e, "out of memory");
    int rc = MPI_Ibcast(buf, bytes, MPI_BYTE, 0, MPI_COMM_WORLD, r);
    if (rc != MPI_SUCCESS) {
        free(r);
        return mpi_fail(rc, "MPI_Ibcast", e);
    }
    *req = r;
    return RT_OK;
}

static int mpi_test(void **req, bool *done, RtErr *e) {
    int flag = 0, rc = MPI_Test((MPI_Request *)*req, &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS)
        return mpi_fail(rc, "MPI_Test", e);
    *done = flag != 0;
    if (flag) {
        free(*req);
        *req = NULL;
    }
    return RT_OK;
}

static void mpi_abort(int status) { MPI_Abort(MPI_COMM_WORLD, status); }

const RtDistOps *rt_dist_mpi_ops(void) {
    static const RtDistOps ops = {"Open MPI", mpi_launched, mpi_init, mpi_finalize, mpi_iallreduce, mpi_ibcast,
                                  mpi_test, mpi_abort};
    return &ops;
}
