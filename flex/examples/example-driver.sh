#!/bin/sh
# Example flex provisioner driver: a directory (type=directory, the default)
# or a sparse loop-backed image file (type=loop, optionally formatted with
# fsType=ext4) per volume, under a base directory.
#
#   example-driver.sh provision '<json>'   make (or find again) the volume
#   example-driver.sh delete '<json>'      remove it, if this driver made it
#
# It is also the node side, a FlexVolume driver without attach (install it
# on nodes as .../volume/exec/example.com~dir/dir):
#
#   example-driver.sh init                  no attach/detach
#   example-driver.sh mount <dir> '<json>'  bind-mount the directory, or
#                                           loop-mount the image, at <dir>
#   example-driver.sh unmount <dir>         unmount <dir>
#
# The base directory is the StorageClass parameter `baseDir`, else the
# environment variable FLEX_EXAMPLE_BASE_DIR. Every volume is recorded in
# <baseDir>/.flex-example/<pv name> before it is made; provision with a
# record returns the same volume (idempotent retries), and delete removes
# only a volume whose record matches the PV's options (a missing record
# means nothing of ours is left: success).
#
# Replies go to stdout as one JSON object; provision and delete log to
# stderr, node-side calls log nothing (see the dispatch below). POSIX sh plus
# coreutils (mkdir, rm, mv, dd); mkfs.ext4 only for fsType=ext4.
# The JSON argument is the provisioner's flat, compact object of strings; a
# value this script reads must not contain '"' or '\'.
set -u

log() { printf 'example-driver: %s\n' "$*" >&2; }

reply_failure() {
    log "failure: $1"
    printf '{"status":"Failure","message":"%s"}\n' "$1"
    exit 1
}

# json_get JSON KEY: the string value of KEY (empty if absent).
json_get() {
    key=$(printf '%s' "$2" | sed 's/[].[*^$/\\]/\\&/g')
    printf '%s\n' "$1" | sed -n "s/.*\"$key\":\"\([^\"\\\\]*\)\".*/\1/p"
}

# require_plain JSON KEY...: fail when KEY is present with a value json_get
# cannot read (one with an escaped quote or backslash), instead of reading it
# as absent.
require_plain() {
    j=$1
    shift
    for k in "$@"; do
        case $j in
            *"\"$k\":\""*)
                v=$(json_get "$j" "$k")
                case $j in
                    *"\"$k\":\"$v\""*) ;;
                    *) reply_failure "the value of $k must not contain quotes or backslashes" ;;
                esac
                ;;
        esac
    done
}

# safe_path VALUE NAME: refuse values that could not be echoed into JSON.
safe_path() {
    case $1 in
        /*) ;;
        *) reply_failure "$2 must be an absolute path" ;;
    esac
    case $1 in
        *'"'* | *'\'* | *'
'*) reply_failure "$2 must not contain quotes, backslashes or newlines" ;;
    esac
}

provision() {
    json=$1
    require_plain "$json" kubernetes.io/pvOrVolumeName baseDir type fsType requestBytes
    pv=$(json_get "$json" kubernetes.io/pvOrVolumeName)
    case $pv in
        '' | *[!a-z0-9.-]*) reply_failure "missing or invalid kubernetes.io/pvOrVolumeName" ;;
    esac
    base=$(json_get "$json" baseDir)
    [ -n "$base" ] || base=${FLEX_EXAMPLE_BASE_DIR:-}
    [ -n "$base" ] || reply_failure "no base directory: set StorageClass parameter baseDir or FLEX_EXAMPLE_BASE_DIR"
    safe_path "$base" baseDir
    type=$(json_get "$json" type)
    fstype=$(json_get "$json" fsType)
    case ${type:=directory} in
        directory)
            path=$base/$pv
            [ -z "$fstype" ] || reply_failure "parameter fsType needs type loop"
            ;;
        loop)
            path=$base/$pv.img
            bytes=$(json_get "$json" requestBytes)
            case $bytes in
                '' | 0 | *[!0-9]*) reply_failure "type loop needs a storage request (requestBytes=$bytes)" ;;
            esac
            case $fstype in
                '' | ext4) ;;
                *) reply_failure "parameter fsType: allowed ext4 (or unset), got $fstype" ;;
            esac
            ;;
        *) reply_failure "parameter type: allowed directory, loop; got $type" ;;
    esac
    state=$base/.flex-example
    record=$state/$pv
    mkdir -p "$state" || reply_failure "cannot create $state"
    if [ -f "$record" ]; then
        recorded=$(cat "$record")
        [ "$recorded" = "$type $path" ] ||
            reply_failure "$pv was already made as '$recorded'; not making '$type $path'"
        log "$pv already recorded; making sure $path exists"
    else
        if [ -e "$path" ] || [ -L "$path" ]; then
            reply_failure "$path exists but was not made by this driver; refusing to take it over"
        fi
        printf '%s %s\n' "$type" "$path" >"$record.tmp" && mv "$record.tmp" "$record" ||
            reply_failure "cannot write $record"
    fi
    case $type in
        directory)
            [ ! -L "$path" ] || reply_failure "$path is a symlink; refusing"
            mkdir -p "$path" || reply_failure "cannot create $path"
            log "directory $path ready"
            printf '{"status":"Success","options":{"path":"%s","type":"directory"}}\n' "$path"
            ;;
        loop)
            if [ ! -f "$path" ]; then
                dd if=/dev/null of="$path.tmp" bs=1 count=0 seek="$bytes" 2>/dev/null ||
                    reply_failure "cannot create $path.tmp of $bytes bytes"
                if [ "$fstype" = ext4 ]; then
                    mkfs.ext4 -q -F "$path.tmp" >&2 || reply_failure "mkfs.ext4 failed on $path.tmp"
                fi
                mv "$path.tmp" "$path" || reply_failure "cannot rename $path.tmp"
            fi
            log "image $path ready ($bytes bytes)"
            if [ -n "$fstype" ]; then
                printf '{"status":"Success","options":{"fsType":"%s","path":"%s","type":"loop"}}\n' "$fstype" "$path"
            else
                printf '{"status":"Success","options":{"path":"%s","type":"loop"}}\n' "$path"
            fi
            ;;
    esac
    exit 0
}

delete() {
    json=$1
    require_plain "$json" kubernetes.io/pvOrVolumeName path type
    pv=$(json_get "$json" kubernetes.io/pvOrVolumeName)
    case $pv in
        '' | *[!a-z0-9.-]*) reply_failure "missing or invalid kubernetes.io/pvOrVolumeName" ;;
    esac
    path=$(json_get "$json" path)
    type=$(json_get "$json" type)
    [ -n "$path" ] && [ -n "$type" ] || reply_failure "options path and type are missing: this PV was not made by this driver"
    safe_path "$path" path
    record=$(dirname "$path")/.flex-example/$pv
    if [ ! -f "$record" ]; then
        log "no record $record: nothing of ours to delete"
        printf '{"status":"Success","message":"nothing to delete"}\n'
        exit 0
    fi
    recorded=$(cat "$record")
    [ "$recorded" = "$type $path" ] ||
        reply_failure "$pv was made as '$recorded', the PV says '$type $path'; nothing deleted"
    case $type in
        directory) rm -rf -- "$path" || reply_failure "cannot remove $path" ;;
        loop) rm -f -- "$path" "$path.tmp" || reply_failure "cannot remove $path" ;;
    esac
    rm -f -- "$record" || reply_failure "cannot remove $record"
    log "deleted $type $path"
    printf '{"status":"Success"}\n'
    exit 0
}

domount() {
    mnt=$1
    json=$2
    require_plain "$json" path type fsType kubernetes.io/readwrite
    path=$(json_get "$json" path)
    type=$(json_get "$json" type)
    [ -n "$path" ] || reply_failure "option path is missing"
    safe_path "$path" path
    ro=
    [ "$(json_get "$json" kubernetes.io/readwrite)" != ro ] || ro=,ro
    mkdir -p "$mnt" || reply_failure "cannot create mount point $mnt"
    case $type in
        directory)
            [ -d "$path" ] && [ ! -L "$path" ] || reply_failure "$path is not a directory"
            mount --bind "$path" "$mnt" || reply_failure "bind mount of $path on $mnt failed"
            [ -z "$ro" ] || mount -o remount,bind,ro "$mnt" ||
                { umount "$mnt"; reply_failure "read-only remount of $mnt failed"; }
            ;;
        loop)
            [ -n "$(json_get "$json" fsType)" ] ||
                reply_failure "$path has no filesystem: use a class with fsType: ext4"
            [ -f "$path" ] || reply_failure "$path is not a file"
            mount -o "loop$ro" "$path" "$mnt" || reply_failure "loop mount of $path on $mnt failed"
            ;;
        *) reply_failure "option type: allowed directory, loop; got $type" ;;
    esac
    log "mounted $type $path on $mnt"
    printf '{"status":"Success"}\n'
    exit 0
}

unmount() {
    mnt=$1
    if mountpoint -q "$mnt" 2>/dev/null; then
        umount "$mnt" || reply_failure "cannot unmount $mnt"
        log "unmounted $mnt"
    fi
    printf '{"status":"Success"}\n'
    exit 0
}

# The kubelet reads a node-side call's stdout and stderr together as its
# reply (FlexVolume's driver call uses combined output): node-side calls
# print the JSON reply and nothing else; a failure's cause is in its message.
case ${1:-} in
    init | mount | unmount) exec 2>/dev/null ;;
esac

case ${1:-} in
    init) printf '{"status":"Success","capabilities":{"attach":false}}\n' ;;
    provision) provision "${2:-}" ;;
    delete) delete "${2:-}" ;;
    mount) domount "${2:-}" "${3:-}" ;;
    unmount) unmount "${2:-}" ;;
    *) printf '{"status":"Not supported","message":"%s is not implemented by the example driver"}\n' "${1:-(no command)}" ;;
esac
