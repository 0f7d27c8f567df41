#!/usr/bin/env bash
# Build the Nitro KVM modules (kvm.ko, kvm-amd.ko, kvm-intel.ko) for Debian's packaged 6.1
# kernel, or rebuild only what changed.
#
#   kernel/build.sh [CACHE_DIR]      prints the build's directory on stdout
#
# One consistent Debian kernel version, resolved from linux-image-amd64's dependency: its
# linux-source-6.1 tarball, linux-image (config, vmlinuz and stock modules for the test bed) and
# linux-headers-<abi>-amd64 (Module.symvers: without it the modules will not load) are fetched
# with apt-get download and unpacked with dpkg -x into CACHE_DIR/<version>/, never installed.
# The kernel tree is unpacked, configured from the image's own config (olddefconfig) and
# prepared (modules_prepare) once; each run then re-applies kernel/patches/*.patch (reverting
# the series of the previous run first when it changed), copies the ABI header
# include/uapi/linux/kvm_nitro.h in, checks that the patches do not change the KVM struct layout
# that code built into the stock kernel sees, and builds M=arch/x86/kvm.
#
# Output directory (printed): kvm.ko kvm-amd.ko kvm-intel.ko, build.env (the versions and the
# paths of the image's vmlinuz and module tree).  Logs go to stderr.  Needs: apt, dpkg, gcc,
# make, bison, flex, libelf-dev, bc, kmod, dwarves (pahole), xz-utils, patch.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${1:-${LIBVIRT_NITRO_CACHE:-/var/cache/libvirt-nitro}/kernel}
jobs=${NITRO_KERNEL_JOBS:-2}

log() { echo "build.sh: $*" >&2; }
die() { echo "build.sh: error: $*" >&2; exit 1; }

for tool in apt-get dpkg gcc make bison flex bc pahole patch xz objdump; do
    command -v "$tool" >/dev/null || die "missing $tool (apt-get install dwarves bison flex libelf-dev bc kmod xz-utils patch build-essential)"
done
[ -f /usr/include/libelf.h ] || die "missing libelf.h (apt-get install libelf-dev)"

# --- one consistent version --------------------------------------------------------------
image_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null \
    | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-amd64$/ { print $2; exit }')
[ -n "$image_pkg" ] || die "cannot resolve linux-image-amd64 (run apt-get update)"
version=$(apt-cache policy "$image_pkg" | awk '$1 == "Candidate:" { print $2 }')
abi=${image_pkg#linux-image-}
abi=${abi%-amd64}
source_version=$(apt-cache policy linux-source-6.1 | awk '$1 == "Candidate:" { print $2 }')
[ "$source_version" = "$version" ] \
    || die "linux-source-6.1 is $source_version but $image_pkg is $version (apt-get update?)"

top="$cache/$version"
mkdir -p "$top"
exec 9>"$top/.lock"
flock 9

# --- packages -----------------------------------------------------------------------------
pkgs="$top/pkg"
if [ ! -f "$pkgs/.done" ]; then
    log "fetching linux-source-6.1, $image_pkg, linux-headers-$abi-amd64 $version"
    rm -rf "$pkgs"
    mkdir -p "$pkgs/debs"
    # apt-get download wants a directory its _apt user can write to.
    chmod 0777 "$pkgs/debs"
    (cd "$pkgs/debs" && apt-get download -q "linux-source-6.1=$version" "$image_pkg=$version" \
        "linux-headers-$abi-amd64=$version" 2> >(grep -v unsandboxed >&2) >&2)
    dpkg -x "$pkgs"/debs/linux-source-6.1_*.deb "$pkgs/source"
    dpkg -x "$pkgs"/debs/"$image_pkg"_*.deb "$pkgs/image"
    dpkg -x "$pkgs"/debs/linux-headers-"$abi"-amd64_*.deb "$pkgs/headers"
    rm -rf "$pkgs/debs"
    touch "$pkgs/.done"
fi
release=$(basename "$pkgs"/image/boot/vmlinuz-*)
release=${release#vmlinuz-}
symvers="$pkgs/headers/usr/src/linux-headers-$release/Module.symvers"
[ -f "$symvers" ] || die "no Module.symvers in linux-headers-$abi-amd64"
tarball=$(ls "$pkgs"/source/usr/src/linux-source-6.1.tar.*)
kmake() { make -s -j"$jobs" KERNELRELEASE="$release" "$@"; }
# The x86 code built into the stock kernel that includes kvm_host.h: kernel/entry/kvm.c bumps
# vcpu->stat.signal_exits, the Intel perf driver reads struct kvm_pmu.  Their code must not
# change under the patches, or the stock kernel writes to the wrong place.
layout_objs="kernel/entry/kvm.o arch/x86/events/intel/core.o"

# --- the prepared tree (unpacked, configured, modules_prepare): once ------------------------
tree="$top/linux"
if [ ! -f "$top/.prepared" ]; then
    log "unpacking $(basename "$tarball") and preparing the tree (minutes)"
    rm -rf "$tree" "$top/applied" "$top/.applied.sum" "$top/layout"
    mkdir -p "$tree"
    tar -xf "$tarball" -C "$tree" --strip-components=1
    cp "$pkgs/image/boot/config-$release" "$tree/.config"
    # Debian's config names its signing keys; the modules are not signed here.
    (cd "$tree" && scripts/config --set-str SYSTEM_TRUSTED_KEYS "" \
        --set-str SYSTEM_REVOCATION_KEYS "" --disable MODULE_SIG_ALL)
    start=$SECONDS
    kmake -C "$tree" olddefconfig
    # Without pahole olddefconfig drops DEBUG_INFO_BTF_MODULES, which changes struct module.
    grep -q '^CONFIG_DEBUG_INFO_BTF_MODULES=y' "$tree/.config" \
        || die "olddefconfig dropped DEBUG_INFO_BTF_MODULES (is dwarves installed?)"
    kmake -C "$tree" modules_prepare
    cp "$symvers" "$tree/Module.symvers"
    log "olddefconfig + modules_prepare: $((SECONDS - start)) s"
    touch "$top/.prepared"
fi

# --- the series: revert the previous one when it changed, apply the current one -------------
series=$(ls "$here"/patches/*.patch 2>/dev/null | sort || true)
want=$(cat /dev/null $series | sha256sum | cut -c1-16)
have=$(cat "$top/.applied.sum" 2>/dev/null || echo none)
if [ "$want" != "$have" ]; then
    # Revert the previous series last patch first (saved copies: the checkout may have moved).
    for p in $(ls -r "$top"/applied/*.patch 2>/dev/null || true); do
        log "reverting $(basename "$p")"
        if ! (cd "$tree" && patch -R -p1 -s --no-backup-if-mismatch -r - < "$p" >&2); then
            rm -f "$top/.prepared"
            [ -z "${NITRO_BUILD_RETRY:-}" ] || die "could not revert $(basename "$p")"
            log "could not revert $(basename "$p"): unpacking the tree again"
            NITRO_BUILD_RETRY=1 exec "$0" "$@"
        fi
        rm "$p"
    done
    rm -f "$top/.applied.sum"
    # The pristine objects for the layout check, compiled before any patch is applied.
    if [ ! -d "$top/layout/before" ]; then
        log "compiling the built-in KVM users before the patches"
        kmake -C "$tree" $layout_objs
        mkdir -p "$top/layout/before"
        for obj in $layout_objs; do
            objdump -d -r "$tree/$obj" | tail -n +3 > "$top/layout/before/${obj//\//_}.dis"
        done
    fi
    mkdir -p "$top/applied"
    for p in $series; do
        log "applying $(basename "$p")"
        if ! (cd "$tree" && patch -p1 --forward --no-backup-if-mismatch -r - < "$p" >&2); then
            rm -f "$top/.prepared"
            die "$(basename "$p") does not apply (hunk rejected above); the tree is discarded"
        fi
        cp "$p" "$top/applied/"
    done
    echo "$want" > "$top/.applied.sum"
fi

# The ABI header, one source of truth; copied only when it changed (make sees mtimes).
cmp -s "$here/include/uapi/linux/kvm_nitro.h" "$tree/include/uapi/linux/kvm_nitro.h" \
    || cp "$here/include/uapi/linux/kvm_nitro.h" "$tree/include/uapi/linux/kvm_nitro.h"

# --- layout check: built-in code must see the same KVM structs ------------------------------
kmake -C "$tree" $layout_objs
for obj in $layout_objs; do
    name=${obj//\//_}
    objdump -d -r "$tree/$obj" | tail -n +3 > "$top/layout/$name.after.dis"
    if ! cmp -s "$top/layout/before/$name.dis" "$top/layout/$name.after.dis"; then
        diff -u "$top/layout/before/$name.dis" "$top/layout/$name.after.dis" | head -40 >&2 || true
        die "the patches change the code of $obj (built into the stock kernel): keep Nitro state at the end of struct kvm_vcpu/struct kvm or behind a pointer"
    fi
done
log "layout check: $layout_objs unchanged"

# --- the modules --------------------------------------------------------------------------
start=$SECONDS
kmake -C "$tree" M=arch/x86/kvm modules
log "make M=arch/x86/kvm modules: $((SECONDS - start)) s"

out="$top/out"
mkdir -p "$out"
for ko in kvm kvm-amd kvm-intel; do
    cmp -s "$tree/arch/x86/kvm/$ko.ko" "$out/$ko.ko" || cp "$tree/arch/x86/kvm/$ko.ko" "$out/$ko.ko"
done
cat > "$out/build.env" <<ENV
# libvirt-nitro patched KVM modules, built by kernel/build.sh
KERNEL_PACKAGE=$image_pkg
KERNEL_VERSION=$version
KERNEL_RELEASE=$release
SERIES=$want
VMLINUZ=$pkgs/image/boot/vmlinuz-$release
MODULES=$pkgs/image/lib/modules/$release
ENV
echo "$out"
