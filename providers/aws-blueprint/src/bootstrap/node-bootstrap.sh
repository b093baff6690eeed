# skyplan node bootstrap (docs/bootstrap.md). cloud-init runs it once, from
# runcmd: it reads this cluster's secrets from AWS Secrets Manager with the
# instance profile, writes the CAs (control planes) and the kubeadm
# configuration, and runs kubeadm init or join; the node that initializes
# the cluster then applies the CNI's manifest (downloaded, never carried in
# user data). A second run (a reboot, a rerun by hand) finds the sentinel
# and changes nothing; a run after kubeadm succeeded but the CNI failed
# skips kubeadm and tries the CNI again.
#
# What it deletes: the init lock secret (the initializing control plane
# only, before kubeadm init, so that no second cluster is ever initialized
# behind the same endpoint), and, on exit, the rendered kubeadm configuration
# that holds the token. The PKI and join secrets stay: every later node
# (a replaced control plane, an auto scaling group's next worker) needs them.

readonly CONFIG_DIR=/etc/skyplan
readonly STATE_DIR=/var/lib/skyplan
readonly SENTINEL=$STATE_DIR/bootstrap.done
# kubeadm succeeded; holds what it did (init, control-plane, worker).
readonly KUBEADM_DONE=$STATE_DIR/kubeadm.done
readonly PKI_DIR=/etc/kubernetes/pki
readonly KUBEADM_CONFIG=/run/kubeadm/kubeadm.yaml
readonly ADMIN_KUBECONFIG=/etc/kubernetes/admin.conf
readonly CNI_MANIFEST=/run/skyplan/cni.yaml
# Secrets Manager may be unreachable for a while after boot (instance
# profile propagation, the NAT route): retry each call.
readonly ATTEMPTS=${SKYPLAN_ATTEMPTS:-30}
readonly RETRY_SECONDS=${SKYPLAN_RETRY_SECONDS:-10}
# AWS CLI v2 would page its output on a terminal (a rerun by hand).
export AWS_PAGER=""

log() {
    printf 'skyplan-bootstrap: %s\n' "$*" >&2
}

fail() {
    log "FAILED: $*"
    exit 1
}

if [[ -e $SENTINEL ]]; then
    log "this node bootstrapped before ($SENTINEL exists); nothing to do"
    exit 0
fi

ERR=$(mktemp)
cleanup() {
    rm -f "$KUBEADM_CONFIG" "$ERR"
}
trap cleanup EXIT

# aws_call ARGS...: one Secrets Manager call, retried. Its output on stdout.
# Returns 3 at once when the secret does not exist (or is being deleted:
# force-deleting takes a few seconds), 1 after the last attempt.
aws_call() {
    local attempt=1 out
    until out=$(aws secretsmanager --region "$REGION" --output text "$@" 2>"$ERR"); do
        if grep -q -e 'ResourceNotFoundException' -e 'marked for deletion' "$ERR"; then
            return 3
        fi
        next_attempt "aws secretsmanager $1" "$attempt" || return 1
        attempt=$((attempt + 1))
    done
    printf '%s' "$out"
}

# retry WHAT COMMAND...: COMMAND until it succeeds, at most ATTEMPTS times.
retry() {
    local what=$1 attempt=1
    shift
    until "$@" 2>"$ERR"; do
        next_attempt "$what" "$attempt" || return 1
        attempt=$((attempt + 1))
    done
}

# next_attempt WHAT N: say that attempt N failed (its error is in $ERR);
# wait before the next one, or return 1 when that was the last.
next_attempt() {
    log "$1: attempt $2 of $ATTEMPTS failed: $(tr '\n' ' ' <"$ERR")"
    if (($2 >= ATTEMPTS)); then
        return 1
    fi
    sleep "$RETRY_SECONDS"
}

# read_secret ID FIELD: the SecretString or SecretBinary (base64) of a secret.
read_secret() {
    aws_call get-secret-value --secret-id "$1" --query "$2"
}

# run_kubeadm: take the init lock (the initializing node), write the CAs
# (control planes) and the configuration with the token, run kubeadm. Sets
# `mode` to what this node did: init, control-plane or worker.
run_kubeadm() {
    mode=$ROLE
    if [[ $ROLE == init ]]; then
        status=0
        read_secret "$INIT_LOCK_SECRET" Name >/dev/null || status=$?
        case $status in
            0)
                aws_call delete-secret --secret-id "$INIT_LOCK_SECRET" --force-delete-without-recovery >/dev/null ||
                    fail "could not delete the init lock $INIT_LOCK_SECRET (the instance profile needs secretsmanager:DeleteSecret on aws.cluster.x-k8s.io/*); not initializing, so that no second cluster starts"
                log "took the init lock $INIT_LOCK_SECRET: this node initializes the cluster"
                ;;
            3)
                log "the init lock $INIT_LOCK_SECRET is gone: the cluster was initialized before; joining it as a control plane"
                mode=control-plane
                ;;
            *)
                fail "could not read the init lock $INIT_LOCK_SECRET (the instance profile needs secretsmanager:GetSecretValue on aws.cluster.x-k8s.io/*, and the node a route to Secrets Manager)"
                ;;
        esac
    fi

    if [[ $mode != worker ]]; then
        pki=$(read_secret "$PKI_SECRET" SecretBinary) ||
            fail "could not read the cluster CAs from secret $PKI_SECRET (missing, or not readable with the instance profile)"
        mkdir -p "$PKI_DIR"
        base64 -d <<<"$pki" | tar --extract --file=- --directory="$PKI_DIR" --no-same-owner --same-permissions ||
            fail "secret $PKI_SECRET is not the archive of CAs skyplan writes"
        unset pki
        log "wrote the cluster CAs to $PKI_DIR"
    fi

    join=$(read_secret "$JOIN_SECRET" SecretString) ||
        fail "could not read the bootstrap token from secret $JOIN_SECRET (missing, or not readable with the instance profile)"
    token=
    hash=
    while IFS='=' read -r key value; do
        case $key in
            token) token=$value ;;
            ca-cert-hash) hash=$value ;;
        esac
    done <<<"$join"
    unset join
    [[ $token =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]] || fail "secret $JOIN_SECRET holds no bootstrap token"
    [[ $hash =~ ^sha256:[0-9a-f]{64}$ ]] || fail "secret $JOIN_SECRET holds no CA certificate hash"

    case $mode in
        init)
            verb="init"
            template=$CONFIG_DIR/kubeadm-init.yaml
            ;;
        control-plane)
            verb="join"
            template=$CONFIG_DIR/kubeadm-join-control-plane.yaml
            ;;
        *)
            verb="join"
            template=$CONFIG_DIR/kubeadm-join.yaml
            ;;
    esac
    config=$(<"$template")
    config=${config//__SKYPLAN_BOOTSTRAP_TOKEN__/$token}
    config=${config//__SKYPLAN_CA_CERT_HASH__/$hash}
    mkdir -p "${KUBEADM_CONFIG%/*}"
    printf '%s\n' "$config" >"$KUBEADM_CONFIG"
    unset config token hash

    log "running kubeadm $verb --config $KUBEADM_CONFIG ($template)"
    kubeadm "$verb" --config "$KUBEADM_CONFIG" ||
        fail "kubeadm $verb exited with status $? (its output is above; /var/log/cloud-init-output.log keeps it)"
}

# install_cni: apply the CNI pack's manifest through the new cluster's API,
# as its administrator (kubeadm's admin.conf), once.
install_cni() {
    mkdir -p "${CNI_MANIFEST%/*}"
    retry "downloading the CNI manifest $CNI_MANIFEST_URL" \
        curl --fail --silent --show-error --location --output "$CNI_MANIFEST" "$CNI_MANIFEST_URL" ||
        fail "could not download the CNI manifest $CNI_MANIFEST_URL (the node reaches the internet through its NAT gateway)"
    if [[ -n $CNI_MANIFEST_SHA256 ]]; then
        sha256sum --check --status <<<"$CNI_MANIFEST_SHA256  $CNI_MANIFEST" ||
            fail "the CNI manifest from $CNI_MANIFEST_URL is not the one whose sha256 the profile gives ($CNI_MANIFEST_SHA256)"
    fi
    if [[ -n $CALICO_POOL_CIDR ]]; then
        # Calico's manifest ships its IP pool commented out; give it the
        # cluster's pod network (without it, Calico reads kubeadm's).
        sed -i -e 's|^\( *\)# - name: CALICO_IPV4POOL_CIDR$|\1- name: CALICO_IPV4POOL_CIDR|' \
            -e "s|^\\( *\\)#   value: \"192.168.0.0/16\"\$|\\1  value: \"$CALICO_POOL_CIDR\"|" "$CNI_MANIFEST"
        if ! grep -q '^ *- name: CALICO_IPV4POOL_CIDR$' "$CNI_MANIFEST"; then
            log "note: the CNI manifest has no CALICO_IPV4POOL_CIDR to set; Calico takes the pod network from kubeadm's configuration"
        fi
    fi
    # Server-side: Calico's CRDs are too large for kubectl's client-side
    # apply annotation.
    retry "applying the CNI manifest" \
        kubectl --kubeconfig "$ADMIN_KUBECONFIG" apply --server-side --force-conflicts --filename "$CNI_MANIFEST" ||
        fail "could not apply the CNI manifest (the cluster is initialized; run $0 again to retry)"
    log "applied the CNI manifest from $CNI_MANIFEST_URL"
}

if [[ -e $KUBEADM_DONE ]]; then
    mode=$(<"$KUBEADM_DONE")
    log "kubeadm $mode ran on this node before ($KUBEADM_DONE); finishing what follows it"
else
    run_kubeadm
    mkdir -p "$STATE_DIR"
    printf '%s\n' "$mode" >"$KUBEADM_DONE"
fi

if [[ $mode == init && -n $CNI_MANIFEST_URL ]]; then
    install_cni
fi

date -u +%Y-%m-%dT%H:%M:%SZ >"$SENTINEL"
log "this node is bootstrapped ($mode)"
