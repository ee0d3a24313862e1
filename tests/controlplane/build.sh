#!/usr/bin/env bash
# Builds, or finds already built, the binaries the Kubernetes tests run: kube-apiserver, etcd and
# kubectl from the Kubernetes release pinned in go.mod beside this script, and helm from
# helm/go.mod. They go to ${XDG_CACHE_HOME:-~/.cache}/flagstage/controlplane/, never into the
# repository, so every clone and every CI run on a machine shares one build. A binary that is
# there and reports the pinned version is not built again, so a second run takes a second.
#
# With KUBEBUILDER_ASSETS set (the envtest convention), kube-apiserver and etcd are taken from
# that directory and only checked; so is kubectl when the directory has one.
#
# Usage: build.sh [kube-apiserver|etcd|kubectl|helm ...]   (all four by default)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Same fallbacks as the Python side (Path.home() reads the password database without HOME).
home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
cache="${XDG_CACHE_HOME:-$home/.cache}/flagstage/controlplane"
# Go's official archive installs to /usr/local/go, which a non-login shell may not have on PATH.
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  PATH=/usr/local/go/bin:$PATH
fi

log() { printf 'controlplane: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# The version go.mod requires for a module (either `require M v` or a line in a require block).
pinned() {
  local version
  version=$(awk -v m="$2" '($1 == m && $2 ~ /^v/) { print $2; exit }
                           ($1 == "require" && $2 == m) { print $3; exit }' "$1")
  [[ -n $version ]] || die "$1 does not require $2"
  printf '%s\n' "$version"
}

k8s_version=$(pinned "$here/go.mod" k8s.io/kubernetes)
etcd_version=$(pinned "$here/go.mod" go.etcd.io/etcd/server/v3)
helm_version=$(pinned "$here/helm/go.mod" helm.sh/helm/v4)
k8s_minor=$(cut -d. -f2 <<<"$k8s_version")

# What `--version` prints is what a cached binary is checked against. Kubernetes sets its
# version at link time; without these flags the binaries would call themselves v0.0.0.
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
helm_ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version"
helm_ldflags+=" -X helm.sh/helm/v4/internal/version.gitTreeState=clean"

# name | Go module directory | package | expected version string | version command
declare -A module_dir=([kube-apiserver]=$here [etcd]=$here [kubectl]=$here [helm]=$here/helm)
declare -A package=(
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [etcd]=go.etcd.io/etcd/server/v3
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [helm]=helm.sh/helm/v4/cmd/helm
)
declare -A expected=(
  [kube-apiserver]="Kubernetes $k8s_version"
  [etcd]="etcd Version: ${etcd_version#v}"
  [kubectl]="Client Version: $k8s_version"
  [helm]="$helm_version"
)
declare -A version_args=(
  [kube-apiserver]="--version"
  [etcd]="--version"
  [kubectl]="version --client"
  [helm]="version --template={{.Version}}"
)
declare -A ldflags=(
  [kube-apiserver]=$k8s_ldflags [etcd]="-s -w" [kubectl]=$k8s_ldflags [helm]=$helm_ldflags
)
declare -A dest=(
  [kube-apiserver]=$cache/$k8s_version [etcd]=$cache/$k8s_version
  [kubectl]=$cache/$k8s_version [helm]=$cache/helm-$helm_version
)

reports_version() { # reports_version BINARY NAME
  local out
  # shellcheck disable=SC2086  # version_args holds several words on purpose
  out=$("$1" ${version_args[$2]} 2>/dev/null) || return 1
  grep -qF -- "${expected[$2]}" <<<"$out"
}

# Names the modules that go could not fetch, so a failed cold build says what is missing.
report_unresolved() { # report_unresolved STDERR_FILE
  local modules
  # go names the module in one of three ways: "...: path@version: reason"; "missing go.sum entry
  # for module providing package P"; or a bare reason ("module lookup disabled") right after
  # the "go: downloading path version" line of the module it was fetching.
  modules=$(awk '
    /^go: downloading / { pending = $3 "@" $4; next }
    /missing go.sum entry for module providing package / {
      match($0, /providing package [^ ]+/)
      print "the module providing " substr($0, RSTART + 18, RLENGTH - 18) " (not in go.sum)"
      pending = ""; next
    }
    match($0, /: [^ :@]+@v[^ :]+: /) {
      print substr($0, RSTART + 2, RLENGTH - 4); pending = ""; next
    }
    /^[ \t]/ { next }
    { if (pending != "") print pending; pending = "" }' "$1" | sort -u)
  if [[ -n $modules ]]; then
    log "could not resolve these modules:"
    sed 's/^/  /' <<<"$modules" >&2
  fi
  log "go said:"
  tail -n 30 "$1" >&2
}

build() { # build NAME
  local name=$1 dir=${module_dir[$1]} pkg=${package[$1]} out=${dest[$1]}
  local target=$out/$name tmp=$out/.$name.$$ errors stats
  mkdir -p "$out"
  errors=$(mktemp)
  stats=$(mktemp)

  log "$name: resolving the modules of $pkg"
  if ! (cd "$dir" && go list -deps "$pkg" >/dev/null) 2>"$errors"; then
    report_unresolved "$errors"
    rm -f "$errors" "$stats"
    die "$name: could not resolve its modules; nothing was built"
  fi

  log "$name: building $pkg (from scratch this takes minutes; output goes to $out)"
  local timer=()
  [[ -x /usr/bin/time ]] && timer=(/usr/bin/time -f '%e %M' -o "$stats")
  # -trimpath keeps the build directory out of the binary and the cache key. -p follows the
  # cores: more parallel compiles would only raise the peak memory.
  if ! (cd "$dir" && GOFLAGS="-trimpath -mod=readonly" "${timer[@]}" \
        go build -p "$(nproc)" -ldflags="${ldflags[$name]}" -o "$tmp" "$pkg") 2>"$errors"; then
    report_unresolved "$errors"
    rm -f "$errors" "$stats" "$tmp"
    die "$name: go build failed"
  fi
  mv -f "$tmp" "$target"

  if [[ -s $stats ]]; then
    read -r seconds kib <"$stats"
    log "$name: built in ${seconds}s, peak memory $((kib / 1024)) MiB"
  fi
  rm -f "$errors" "$stats"
  reports_version "$target" "$name" ||
    die "$name: the new binary does not report '${expected[$name]}'"
}

ensure() { # ensure NAME
  local name=$1 candidate

  if [[ -n ${KUBEBUILDER_ASSETS:-} ]]; then
    candidate=$KUBEBUILDER_ASSETS/$name
    if [[ -x $candidate ]]; then
      log "$name: using $candidate ($("$candidate" ${version_args[$name]} 2>&1 | head -n 1))"
      return
    fi
    if [[ $name == kube-apiserver || $name == etcd ]]; then
      die "$name: KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no executable $name"
    fi
  fi

  candidate=${dest[$name]}/$name
  if [[ -x $candidate ]] && reports_version "$candidate" "$name"; then
    log "$name: ${expected[$name]} is built ($candidate)"
    return
  fi
  command -v go >/dev/null || die "$name: needs building, and building needs Go on PATH"
  build "$name"
}

names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(kube-apiserver etcd kubectl helm)
for name in "${names[@]}"; do
  [[ -n ${package[$name]:-} ]] || die "unknown binary '$name' (kube-apiserver, etcd, kubectl, helm)"
done

# Two builds at once (a developer and CI on one machine) would only race for the same files.
mkdir -p "$cache"
exec 9>"$cache/.build.lock"
flock 9

for name in "${names[@]}"; do
  ensure "$name"
done
