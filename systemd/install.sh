#!/usr/bin/env bash
# Install qrgate from this checkout as a systemd service on Raspberry Pi OS (Bookworm).
#
#   sudo systemd/install.sh                       install or update, enable, (re)start
#   sudo systemd/install.sh --no-start            the same, without starting it now
#   sudo systemd/install.sh --uninstall           remove service, venv and user; keep
#                                                 /etc/qrgate and /var/lib/qrgate
#   sudo systemd/install.sh --uninstall --purge   remove those two as well
#   systemd/install.sh --root DIR [--no-venv]     stage the files into DIR instead of /;
#                                                 apt-get, useradd and systemctl are
#                                                 printed, not run (a venv built there
#                                                 works from DIR only)
#
# What it sets up: the Debian packages (picamera2 0.3.20 or newer and lgpio come from
# apt), a venv with --system-site-packages in /opt/qrgate/venv holding qrgate, the system
# user qrgate in groups gpio and video, /etc/qrgate/config.toml (an existing one is kept),
# the unit /etc/systemd/system/qrgate.service, the command /usr/local/bin/qrgate, and
# /usr/local/sbin/qrgate-sandboxed (a qrgate command as the service runs it); on a gate
# already configured, it shows the gate's event key to enroll at the centre. 64-bit only.
# Re-running it updates the install; PYTHON overrides the interpreter (/usr/bin/python3).
set -euo pipefail
umask 022 # the service user must be able to read what root installs

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo
readonly user=qrgate
readonly groups=(gpio video)
readonly unit=qrgate.service
# Paths on the target system; under --root they are created inside DIR.
readonly prefix=/opt/qrgate venv=/opt/qrgate/venv etc=/etc/qrgate state=/var/lib/qrgate
readonly unit_file=/etc/systemd/system/qrgate.service command_link=/usr/local/bin/qrgate
# Runs a qrgate command as the service user inside the service's sandbox (root only).
readonly sandboxed_link=/usr/local/sbin/qrgate-sandboxed
# picamera2 0.3.20 brought capture timeouts (a loose cable would block a capture for ever).
readonly picamera2_min=0.3.20

root="" start=true build_venv=true action=install purge=false work="" config_shipped=false
python="${PYTHON:-/usr/bin/python3}"
trap '[[ -z $work ]] || rm -rf -- "$work"' EXIT

say() { printf 'install.sh: %s\n' "$*"; }
step() { printf '==> %s\n' "$*"; }
die() {
    printf 'install.sh: %s\n' "$2" >&2
    exit "$1"
}
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

# A command that changes the system: run it, or under --root only show it.
system() {
    if [[ -z $root ]]; then
        "$@"
        return
    fi
    local arg shown=()
    for arg; do
        if [[ $arg =~ ^[A-Za-z0-9_./:,=@+-]+$ ]]; then shown+=("$arg"); else shown+=("'$arg'"); fi
    done
    printf 'would run: %s\n' "${shown[*]}"
}

# Where a target path lives while installing: itself, or inside the --root folder.
at() { printf '%s%s' "$root" "$1"; }

parse_args() {
    local given="$*"
    while (($#)); do
        case "$1" in
        --root)
            (($# >= 2)) || die 2 "--root needs a folder"
            mkdir -p -- "$2"
            root="$(cd -- "$2" && pwd)"
            [[ $root != / ]] || die 2 "--root / is the real system: leave --root out"
            shift
            ;;
        --no-start) start=false ;;
        --no-venv) build_venv=false ;;
        --uninstall) action=uninstall ;;
        --purge) purge=true ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die 2 "unknown option: $1 (see --help)" ;;
        esac
        shift
    done
    if $purge && [[ $action != uninstall ]]; then die 2 "--purge goes with --uninstall"; fi
    if ! $build_venv && [[ -z $root ]]; then die 2 "--no-venv is for --root staging only"; fi
    if [[ -z $root && $EUID -ne 0 ]]; then
        die 1 "this sets up packages, a user and a service, so it needs root: sudo $0 $given"
    fi
}

# --- install ------------------------------------------------------------------------

# dpkg's database: the staged system's under --root (where there is one), else this one's.
dpkg_admin() {
    if [[ -n $root && -d $root/var/lib/dpkg ]]; then
        printf -- '--admindir=%s' "$root/var/lib/dpkg"
    else
        printf -- '--admindir=/var/lib/dpkg'
    fi
}

installed() {
    [[ $(dpkg-query "$(dpkg_admin)" -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# 64-bit only: 32-bit Raspberry Pi OS has no wheels of zxing-cpp, pillow or cffi 2 for
# its Python 3.11, and building them on a Pi needs compilers and an hour.
check_architecture() {
    local arch
    arch="$(dpkg --print-architecture 2>/dev/null || uname -m)"
    case "$arch" in
    arm64 | aarch64 | amd64 | x86_64) ;;
    *) die 1 "this is a $arch system: qrgate needs 64-bit Raspberry Pi OS (arm64); see docs/install.md" ;;
    esac
}

# An installed python3-picamera2 older than picamera2_min: apt must upgrade it. Under
# --root, the staged system's, when it has a dpkg database.
picamera2_too_old() {
    local version
    if [[ -n $root && ! -d $root/var/lib/dpkg ]]; then return 1; fi
    version="$(dpkg-query "$(dpkg_admin)" -W -f='${Version}' python3-picamera2 2>/dev/null)" || return 1
    [[ -n $version ]] && ! dpkg --compare-versions "$version" ge "$picamera2_min"
}

require_recent_picamera2() {
    if picamera2_too_old; then
        die 1 "python3-picamera2 $(dpkg-query "$(dpkg_admin)" -W -f='${Version}' python3-picamera2) is older than $picamera2_min, which the gate needs (capture timeouts): sudo apt update && sudo apt full-upgrade"
    fi
}

apt_packages() {
    # libzbar0: the pyzbar decoder. python3-picamera2 brings libcamera and numpy.
    local packages=(python3-picamera2 python3-lgpio python3-venv libzbar0)
    # The `pi` extra wants RPi.GPIO: apt's satisfies it without a compiler. Boards set
    # up with rpi-lgpio (which conflicts with it) already have the RPi.GPIO module.
    if [[ -n $root ]] || ! installed python3-rpi-lgpio; then packages+=(python3-rpi.gpio); fi
    printf '%s\n' "${packages[@]}"
}

install_packages() {
    step "Debian packages"
    local wanted missing=()
    mapfile -t wanted < <(apt_packages)
    if [[ -n $root ]]; then
        system apt-get install -y --no-install-recommends "${wanted[@]}"
        require_recent_picamera2
        return
    fi
    for package in "${wanted[@]}"; do installed "$package" || missing+=("$package"); done
    if picamera2_too_old; then missing+=(python3-picamera2); fi # apt install upgrades it
    if ((${#missing[@]} == 0)); then
        say "all present: ${wanted[*]}"
        return
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    local policy
    policy="$(apt-cache policy python3-picamera2)"
    if [[ $policy != *"Candidate: "[0-9]* ]] && ! installed python3-picamera2; then
        die 1 "python3-picamera2 is not in the apt sources: this installer is for Raspberry Pi OS"
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    require_recent_picamera2
}

has_group() { [[ -z $root ]] && getent group "$1" >/dev/null; }
has_user() { [[ -z $root ]] && getent passwd "$1" >/dev/null; }

install_user() {
    step "user $user in groups ${groups[*]}"
    for group in "${groups[@]}"; do
        has_group "$group" || system groupadd --system "$group"
    done
    if ! has_user "$user"; then
        system useradd --system --user-group --home-dir "$state" --no-create-home \
            --shell /usr/sbin/nologin --comment "qrgate gate daemon" "$user"
    fi
    local list
    printf -v list '%s,' "${groups[@]}"
    system usermod --append --groups "${list%,}" "$user"
}

install_files() {
    step "configuration in $etc, state in $state"
    install -d -m 0755 "$(at "$prefix")" "$(at "$etc")"
    install -d -m 0700 "$(at "$state")"
    system chown "$user:$user" "$state"
    if [[ -e $(at "$etc/config.toml") ]]; then
        say "kept $etc/config.toml; the shipped defaults are in $repo/config.toml"
    else
        config_shipped=true
        install -m 0640 "$repo/config.toml" "$(at "$etc/config.toml")"
        system chgrp "$user" "$etc/config.toml"
        say "installed $etc/config.toml with the defaults: edit it for this gate"
    fi
    rm -rf -- "$(at "$prefix/docs")"
    cp -R -- "$repo/docs" "$(at "$prefix/docs")"
}

venv_usable() {
    local here
    here="$(at "$venv")"
    [[ -x $here/bin/python ]] && "$here/bin/python" -c "" 2>/dev/null &&
        grep -qx "include-system-site-packages = true" "$here/pyvenv.cfg"
}

# The `pi` extra, unless rpi-lgpio already provides the RPi.GPIO module.
package_spec() {
    if [[ -z $root ]] && installed python3-rpi-lgpio; then
        printf '%s' "$1"
    else
        printf '%s[pi]' "$1"
    fi
}

install_venv() {
    step "qrgate in $venv"
    if ! $build_venv; then
        say "skipped (--no-venv)"
        return
    fi
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die 1 "qrgate needs Python 3.11 or newer; $python is $("$python" --version 2>&1)"
    if ! venv_usable; then
        # --system-site-packages: picamera2 and lgpio exist only as apt packages.
        "$python" -m venv --clear --system-site-packages "$(at "$venv")"
    fi
    # Build from a copy, so that root leaves no build files in the checkout.
    work="$(mktemp -d)"
    tar -C "$repo" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
        --exclude='*.egg-info' -cf - . | tar -C "$work" -xf -
    "$(at "$venv")/bin/python" -m pip install --quiet --disable-pip-version-check \
        "$(package_spec "$work")"
    say "installed $("$(at "$venv")/bin/qrgate" --version)"
}

install_unit() {
    step "service $unit_file"
    install -d -m 0755 "$(at /etc/systemd/system)" "$(at /usr/local/bin)" "$(at /usr/local/sbin)"
    install -m 0644 "$repo/systemd/qrgate.service" "$(at "$unit_file")"
    install -m 0755 "$repo/systemd/qrgate-sandboxed" "$(at "$sandboxed_link")"
    ln -sfn "$venv/bin/qrgate" "$(at "$command_link")"
}

# 0 when the kept or new config is valid (or cannot be checked without the venv).
config_valid() {
    $build_venv || return 0
    step "checking $etc/config.toml"
    local status=0 only=()
    # The shipped defaults name key sets that are installed later (docs/install.md).
    $config_shipped && only=(--syntax-only)
    "$(at "$venv")/bin/qrgate" check-config "${only[@]}" -c "$(at "$etc/config.toml")" \
        >/dev/null || status=$?
    if ((status != 0)); then
        say "fix $etc/config.toml (the lines above say what), then: sudo systemctl restart qrgate"
        say "(a gate already running keeps its old version until then)"
    fi
    return "$status"
}

booted_with_systemd() { [[ -n $root || -d /run/systemd/system ]]; }

# The gate's event key, made if it has none, shown with the command that enrolls it at
# the centre. Only on a configured gate (the shipped defaults name no real site/gate),
# and never into an image: every gate must make a key of its own, on itself.
show_event_key() {
    step "event key"
    if $config_shipped; then
        say "once [gate] site and id are set: sudo qrgate event-key, and enroll the key it shows at the centre (docs/install.md, step 7)"
    elif ! booted_with_systemd; then
        say "the gate makes its event key at its first start: enroll it then (sudo qrgate event-key)"
    else
        system "$venv/bin/qrgate" event-key -c "$etc/config.toml" ||
            say "the event key cannot be shown now: sudo qrgate event-key (docs/install.md, step 7)"
    fi
}

enable_service() {
    local start_now=$1
    step "enabling $unit"
    if ! booted_with_systemd; then
        system systemctl enable "$unit"
        say "systemd is not running here (an image build?): the gate starts at boot"
        return
    fi
    system systemctl daemon-reload
    system systemctl enable "$unit"
    if $start_now; then
        system systemctl restart "$unit"
        say "starting the gate; follow it with: journalctl -u qrgate -f"
    else
        say "enabled, not started: sudo systemctl start qrgate"
    fi
}

install_all() {
    check_architecture
    install_packages
    install_user
    install_files
    install_venv
    install_unit
    local status=0
    config_valid || status=$?
    if ((status != 0)); then
        enable_service false
        exit "$status"
    fi
    show_event_key # before the gate starts, so it never meets a key root has not handed over
    enable_service "$start"
    say "done. Next: docs/install.md (keys, broker, qrgate doctor, qrgate aim)"
}

# --- uninstall ----------------------------------------------------------------------

uninstall_all() {
    step "removing $unit"
    if [[ -n $root || -e $unit_file ]]; then
        # Stopping runs ExecStopPost=qrgate safe-state, so the venv goes only afterwards.
        if booted_with_systemd; then
            system systemctl disable --now "$unit"
        else
            system systemctl disable "$unit"
        fi
    fi
    rm -f -- "$(at "$unit_file")" "$(at "$sandboxed_link")"
    if booted_with_systemd; then system systemctl daemon-reload; fi
    if [[ -L $(at "$command_link") && $(readlink "$(at "$command_link")") == "$venv/bin/qrgate" ]]; then
        rm -f -- "$(at "$command_link")"
    fi
    step "removing $prefix and user $user"
    rm -rf -- "$(at "$prefix")"
    if [[ -n $root ]] || has_user "$user"; then system userdel "$user"; fi
    if $purge; then
        step "purging $etc, $state and local unit settings"
        rm -rf -- "$(at "$etc")" "$(at "$state")" "$(at "$unit_file.d")"
    else
        say "kept $etc (config, keys) and $state (allowlist, unsent events): --purge removes them"
    fi
}

parse_args "$@"
if [[ -n $root ]]; then say "staging into $root: system commands are shown, not run"; fi
case "$action" in
install) install_all ;;
uninstall) uninstall_all ;;
esac
