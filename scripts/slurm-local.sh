#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the cluster tests (tests/slurm.rs) and for
# trying `mla-lab slurm` without a cluster: Debian's slurm-wlm and munge, one node with this
# machine's CPUs, no cgroup plugins, no accounting, munge's key made at start where there is
# none. Everything lives under DIR (default $HOME/.cache/mla-lab/slurm); nothing in /etc
# changes: clients find the cluster through SLURM_CONF, which `start` prints.
#
#   eval "$(scripts/slurm-local.sh start)"   # starts munged, slurmctld and slurmd; exports SLURM_CONF
#   scripts/slurm-local.sh stop              # stops them, and whatever jobs they ran
#
# Needs root (the daemons run as root here, as SlurmUser); CI runs as root.
set -euo pipefail
DIR=${SLURM_LOCAL_DIR:-$HOME/.cache/mla-lab/slurm}
CONF=$DIR/slurm.conf
MUNGE_SOCKET=$DIR/munge/munge.socket

start() {
    command -v slurmctld > /dev/null || {
        echo "slurm-local: no slurmctld (apt-get install slurm-wlm munge)" >&2
        exit 1
    }
    stop > /dev/null 2>&1 || true
    mkdir -p "$DIR"/{state,spool,log,munge}
    chmod 700 "$DIR/munge"
    local key=$DIR/munge/munge.key
    if [ ! -s "$key" ]; then
        dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
        chmod 400 "$key"
    fi
    munged --force --key-file="$key" --socket="$MUNGE_SOCKET" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munge/munged.seed"
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024))
    cat > "$CONF" << CONF
ClusterName=mla-lab-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
MaxArraySize=10001
KillWait=5
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    export SLURM_CONF=$CONF
    slurmctld -f "$CONF"
    slurmd -f "$CONF"
    # The node answers within seconds; until then sbatch would queue behind an unknown node.
    for _ in $(seq 60); do
        if sinfo -h -N -o '%T' 2> /dev/null | grep -Eq '^(idle|mixed|allocated)'; then
            echo "export SLURM_CONF=$CONF"
            return 0
        fi
        sleep 1
    done
    echo "slurm-local: the node did not come up; logs in $DIR/log" >&2
    tail -n 20 "$DIR"/log/*.log >&2
    exit 1
}

stop() {
    export SLURM_CONF=$CONF
    if [ -f "$CONF" ]; then
        scancel --full --quiet --user="$(id -un)" 2> /dev/null || true
    fi
    for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munge/munged.pid"; do
        if [ -f "$pidfile" ]; then
            local pid
            pid=$(cat "$pidfile")
            kill "$pid" 2> /dev/null || true
            for _ in $(seq 20); do
                kill -0 "$pid" 2> /dev/null || break
                sleep 0.5
            done
            kill -9 "$pid" 2> /dev/null || true
            rm -f "$pidfile"
        fi
    done
    # Job steps slurmd started (slurmstepd) end with it; any left over are this cluster's.
    pkill -f "slurmstepd" 2> /dev/null || true
    rm -rf "$DIR/state" "$DIR/spool"
}

case ${1:-} in
start) start ;;
stop) stop ;;
*)
    echo "usage: slurm-local.sh start|stop" >&2
    exit 2
    ;;
esac
