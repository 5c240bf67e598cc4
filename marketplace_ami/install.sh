#!/usr/bin/env bash
# Install annotrain as systemd services on the Marketplace AMI's base image.
#
#   sudo marketplace_ami/install.sh [gpu]
#
# Run from a copy of the annotrain sources (the Image Builder component unpacks
# them). Base: Amazon Linux 2023 (the recipe's parent images: AL2023 for CPU, the
# Deep Learning Base OSS NVIDIA Driver GPU AMI on AL2023 for GPU); Ubuntu 22.04+ works
# too. `gpu` (any case) installs the NVIDIA driver and container toolkit when the base
# lacks them, CUDA PyTorch wheels, and writes ANNOTRAIN_USE_GPU=true (the config's
# useGPU); without it, CPU wheels and ANNOTRAIN_USE_GPU=false. Setting useGPU to false
# later (in /etc/annotrain/annotrain.env, then `systemctl restart annotrain-api`)
# stops the lab using the GPU; the drivers stay.
#
# Installs, never starts: the image must not carry a database or an admin. The first
# boot of an instance provisions it (annotrain-first-boot.service). Run again, it
# upgrades the lab in place and keeps the settings in /etc/annotrain/annotrain.env.
# ANNOTRAIN_INSTALL_DRY_RUN=1 prints the flavour it read and changes nothing.
set -euo pipefail

usage() {
  echo "usage: $0 [gpu]   (case-insensitive; no argument or 'cpu' for a CPU install)" >&2
  exit 2
}

[[ $# -le 1 ]] || usage
flavour="$(printf '%s' "${1:-cpu}" | tr '[:upper:]' '[:lower:]')"
case "$flavour" in
  gpu) use_gpu=true ;;
  cpu) use_gpu=false ;;
  *) usage ;;
esac
if [[ -n "${ANNOTRAIN_INSTALL_DRY_RUN:-}" ]]; then
  # Say what would be installed, change nothing (tests, reviews).
  echo "flavour=$flavour use_gpu=$use_gpu"
  exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
  echo "$0: run as root (sudo $0 ${1:-})" >&2
  exit 1
fi

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=/opt/annotrain
VENV="$PREFIX/venv"
CONF_DIR=/etc/annotrain
ENV_FILE="$CONF_DIR/annotrain.env"
DATA_DIR=/var/lib/annotrain
BACKUP_DIR=/var/backups/annotrain
SERVICE_USER=annotrain
UNIT_DIR=/etc/systemd/system
# The Marketplace product code first boot checks for; the component passes it.
PRODUCT_CODE="${ANNOTRAIN_PRODUCT_CODE:-}"
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

log() { echo "install.sh: $*"; }

[[ -f "$SRC/pyproject.toml" && -f "$SRC/constraints.txt" ]] ||
  { echo "$0: $SRC is not an annotrain source tree (no pyproject.toml/constraints.txt)" >&2; exit 1; }

# shellcheck disable=SC1091  # the OS's own file
. /etc/os-release
case "${ID:-}" in
  amzn) pkg=dnf ;;
  ubuntu | debian) pkg=apt ;;
  *) echo "$0: unsupported OS '${ID:-unknown}': use Amazon Linux 2023 or Ubuntu" >&2; exit 1 ;;
esac

install_packages() {
  if [[ $pkg == dnf ]]; then
    dnf install -y -q python3.11 python3.11-pip sqlite curl "$@"
  else
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11 python3.11-venv sqlite3 curl "$@"
  fi
}

install_nvidia() {
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    log "NVIDIA driver present: $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)"
  elif [[ $pkg == dnf ]]; then
    # NVIDIA's documented route for Amazon Linux 2023: its CUDA repository, DKMS driver.
    log "installing the NVIDIA driver (DKMS) from NVIDIA's amzn2023 repository"
    dnf install -y -q "kernel-devel-$(uname -r)" "kernel-modules-extra-$(uname -r)" dkms
    dnf config-manager --add-repo \
      https://developer.download.nvidia.com/compute/cuda/repos/amzn2023/x86_64/cuda-amzn2023.repo
    dnf module install -y -q nvidia-driver:latest-dkms
  else
    log "installing the NVIDIA driver (ubuntu-drivers)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ubuntu-drivers-common
    ubuntu-drivers install --gpgpu
  fi
  if ! command -v nvidia-ctk >/dev/null; then
    log "installing the NVIDIA container toolkit"
    if [[ $pkg == dnf ]]; then
      curl -fsSL https://nvidia.github.io/libnvidia-container/stable/rpm/nvidia-container-toolkit.repo \
        -o /etc/yum.repos.d/nvidia-container-toolkit.repo
      dnf install -y -q nvidia-container-toolkit
    else
      curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey |
        gpg --dearmor --yes -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
      curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list |
        sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://#' \
          >/etc/apt/sources.list.d/nvidia-container-toolkit.list
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nvidia-container-toolkit
    fi
  fi
}

# Sets one KEY=value line of the env file, keeping every other line as the operator left it.
set_env() {
  local key=$1 value=$2
  if grep -q "^${key}=" "$ENV_FILE"; then
    sed -i "s|^${key}=.*|${key}=${value}|" "$ENV_FILE"
  else
    printf '%s=%s\n' "$key" "$value" >>"$ENV_FILE"
  fi
}

log "installing annotrain ($flavour) from $SRC"
install_packages
if [[ $flavour == gpu ]]; then
  install_nvidia
fi

if ! id "$SERVICE_USER" >/dev/null 2>&1; then
  useradd --system --home-dir "$DATA_DIR" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
fi
if [[ $flavour == gpu ]] && getent group video >/dev/null; then
  usermod -aG video "$SERVICE_USER"
fi
install -d -m 0755 "$PREFIX" "$CONF_DIR"
install -d -m 0700 -o "$SERVICE_USER" -g "$SERVICE_USER" "$DATA_DIR" "$BACKUP_DIR"

log "creating $VENV with the pinned packages (constraints.txt)"
[[ -x "$VENV/bin/python" ]] || python3.11 -m venv "$VENV"
install -m 0644 "$SRC/constraints.txt" "$PREFIX/constraints.txt"
pip_args=(--quiet --disable-pip-version-check --no-cache-dir)
if [[ $flavour == cpu ]]; then
  pip_args+=(--extra-index-url "$TORCH_CPU_INDEX")  # CPU torch: no CUDA libraries
fi
PIP_CONSTRAINT="$PREFIX/constraints.txt" "$VENV/bin/python" -m pip install "${pip_args[@]}" "$SRC[api,ml]"
ln -sf "$VENV/bin/annotrain" /usr/local/bin/annotrain

if [[ ! -f "$ENV_FILE" ]]; then
  install -m 0640 -o root -g "$SERVICE_USER" /dev/null "$ENV_FILE"
  cat >"$ENV_FILE" <<CONF
# annotrain's settings (docs/ami.md). After a change: sudo systemctl restart annotrain-api
ANNOTRAIN_DATA_DIR=$DATA_DIR
# A Marketplace instance: only its own PAYG license exists (docs/licensing.md).
ANNOTRAIN_AMI=true
# useGPU: false stops the lab using the GPU; the NVIDIA driver stays installed.
ANNOTRAIN_USE_GPU=$use_gpu
ANNOTRAIN_MARKETPLACE_PRODUCT_CODE=$PRODUCT_CODE
# A folder or s3://bucket/prefix (the instance role needs s3:PutObject/GetObject/ListBucket/DeleteObject).
ANNOTRAIN_BACKUP_TARGET=$BACKUP_DIR
ANNOTRAIN_BACKUP_KEEP=7
CONF
else
  log "keeping $ENV_FILE; setting ANNOTRAIN_USE_GPU=$use_gpu"
  set_env ANNOTRAIN_USE_GPU "$use_gpu"
  set_env ANNOTRAIN_AMI true
  [[ -z "$PRODUCT_CODE" ]] || set_env ANNOTRAIN_MARKETPLACE_PRODUCT_CODE "$PRODUCT_CODE"
fi

# First boot runs as the service user; enabling the licence and metering timers is
# the one thing it needs root for, and exactly that command is allowed.
systemctl_bin="$(command -v systemctl)"
sudoers=/etc/sudoers.d/annotrain
printf '%s ALL=(root) NOPASSWD: %s enable --now %s %s\n' "$SERVICE_USER" "$systemctl_bin" \
  annotrain-license-renew.timer annotrain-metering.timer >"$sudoers.tmp"
chmod 0440 "$sudoers.tmp"
visudo -cqf "$sudoers.tmp"
mv "$sudoers.tmp" "$sudoers"

log "installing the systemd units"
install -m 0644 "$SRC"/marketplace_ami/systemd/annotrain-*.service \
  "$SRC"/marketplace_ami/systemd/annotrain-*.timer "$UNIT_DIR/"
systemctl daemon-reload
# Enabled for the next boot, not started: the image carries no lab data. The licence
# renewal and metering timers are enabled by first boot, on Marketplace launches only.
systemctl enable annotrain-first-boot.service annotrain-api.service annotrain-backup.timer
log "done: the API starts at the next boot on port 8080 (docs/ami.md)"
