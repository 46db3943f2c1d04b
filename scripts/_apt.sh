# Sourced by the ensure-*.sh scripts: install a Debian package when apt-get can be used.
#
#   apt_install NAME PACKAGE  ->  0 installed, 1 the install failed, 2 apt-get cannot be used
#                                 here (no apt-get, or neither root nor password-less sudo);
#                                 NAME prefixes the messages.

have() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
    local name=$1 package=$2
    local as_root=()
    if ! have apt-get; then
        echo "$name: apt-get is unavailable here"
        return 2
    fi
    if [ "${EUID:-$(id -u)}" -ne 0 ]; then
        if have sudo && sudo -n true 2>/dev/null; then
            as_root=(sudo -n)
        else
            echo "$name: not root; run as root: apt-get update && apt-get install -y $package"
            return 2
        fi
    fi
    echo "$name: installing Debian's $package package..."
    export DEBIAN_FRONTEND=noninteractive
    if "${as_root[@]}" apt-get update -qq \
        && "${as_root[@]}" apt-get install -y -qq --no-install-recommends "$package" >/dev/null; then
        return 0
    fi
    return 1
}
