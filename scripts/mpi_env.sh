#!/usr/bin/env bash
# Open MPI environment for this machine class (see docs / ENV.md): running as root, more ranks
# than cores (oversubscribed, no binding, yield while idle), and the transport chosen by
# SHARDLM_MPI_TRANSPORT:
#   default (or unset)  Open MPI's choice: pml ob1 with vader (shared memory) / tcp
#   tcp                 pml ob1 with the tcp BTL only
#   ucx                 pml ucx (Debian disables it by default), any UCX transport and device;
#                       SHARDLM_UCX_TLS / SHARDLM_UCX_NET_DEVICES set UCX_TLS / UCX_NET_DEVICES
# Use: `. scripts/mpi_env.sh` (exports into the current shell; sh or bash) or
#      `scripts/mpi_env.sh mpirun -np 2 ...` (runs the command with the environment).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
       OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_hwloc_base_binding_policy=none \
       OMPI_MCA_mpi_yield_when_idle=1

case "${SHARDLM_MPI_TRANSPORT:-default}" in
  default|ob1)
    ;;
  tcp)
    export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,tcp
    ;;
  ucx)
    export OMPI_MCA_pml=ucx OMPI_MCA_pml_ucx_tls=any OMPI_MCA_pml_ucx_devices=any \
           UCX_WARN_UNUSED_ENV_VARS=n
    if [ -n "${SHARDLM_UCX_TLS:-}" ]; then export UCX_TLS="$SHARDLM_UCX_TLS"; fi
    if [ -n "${SHARDLM_UCX_NET_DEVICES:-}" ]; then export UCX_NET_DEVICES="$SHARDLM_UCX_NET_DEVICES"; fi
    ;;
  *)
    echo "mpi_env.sh: unknown SHARDLM_MPI_TRANSPORT '${SHARDLM_MPI_TRANSPORT}' (default, tcp, ucx)" >&2
    return 1 2>/dev/null || exit 1
    ;;
esac

# Executed (not sourced) with a command: run it in this environment.
case "$0" in
  *mpi_env.sh) if [ $# -gt 0 ]; then exec "$@"; fi ;;
esac
