"""A small ext4 (or ext2) file system on a loop device, and "power cuts" of it.

``LoopFs`` makes an image file, formats it ext4 and mounts it through a
loop device.  ``snapshot()`` copies the image file: what the loop device
has handed to its backing file is exactly what a disk would hold after a
power cut; the dirty page cache of the ext4 mounted on top (data and
metadata not yet written back or committed to its journal) is not in the
copy.  ``mount_copy()`` checks a snapshot with ``e2fsck -fy`` and mounts
it read-write on another loop device, so its journal is replayed as after
a reboot.

The file system is mounted with options that keep the page cache from
being written behind the writer's back during a trial: ``commit=60``
(no periodic journal commit), delayed allocation (the default), and
``noauto_da_alloc`` (no implicit flush on close/rename of a replaced
file: only an explicit fsync makes anything durable).

Every mount and loop device is undone by ``close()``, which tests call in
finalizers; an unmount that fails falls back to ``umount -l``.
"""

import os
import shutil
import subprocess

MOUNT_OPTIONS = 'data=ordered,commit=60,noauto_da_alloc'
IMAGE_MB = 64
TOOLS = ('losetup', 'mkfs.ext4', 'mkfs.ext2', 'e2fsck', 'mount', 'umount')


def unavailable_reason():
    """Why loop-device tests cannot run here, or None."""
    if not hasattr(os, 'geteuid') or os.geteuid() != 0:
        return 'loop devices need root (mount, losetup)'
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return '%s is not installed' % tool
    if not os.path.exists('/dev/loop-control'):
        return 'no /dev/loop-control: this kernel has no loop devices'
    return None


def _run(*command, check=True):
    return subprocess.run(command, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          check=check, timeout=60)


class _Mount(object):
    """One image attached to a loop device and mounted at a directory."""

    def __init__(self, image, mountpoint, options, fstype):
        self.image = image
        self.mountpoint = mountpoint
        self.device = None
        self.mounted = False
        os.makedirs(mountpoint, exist_ok=True)
        self.device = _run('losetup', '-f', '--show', image) \
            .stdout.decode().strip()
        try:
            _run('mount', '-t', fstype, '-o', options, self.device,
                 mountpoint)
        except BaseException:
            self.close()
            raise
        self.mounted = True

    def close(self):
        if self.mounted:
            if _run('umount', self.mountpoint, check=False).returncode:
                _run('umount', '-l', self.mountpoint, check=False)
            self.mounted = False
        if self.device:
            _run('losetup', '-d', self.device, check=False)
            self.device = None


class LoopFs(object):
    """A mounted ext4 (or ``fstype``) in ``workdir``: its image, mount
    point (``path``) and snapshots."""

    def __init__(self, workdir, size_mb=IMAGE_MB, options=MOUNT_OPTIONS,
                 fstype='ext4'):
        self.workdir = str(workdir)
        self.fstype = fstype
        self.image = os.path.join(self.workdir, 'disk.img')
        self.mounts = []
        with open(self.image, 'wb') as f:
            f.truncate(size_mb << 20)
        _run('mkfs.' + fstype, '-q', '-F', self.image)
        self.live = self._mount(self.image, 'live', options)
        self.path = self.live.mountpoint
        self.snapshots = 0

    def _mount(self, image, name, options):
        mount = _Mount(image, os.path.join(self.workdir, name), options,
                       self.fstype)
        self.mounts.append(mount)
        return mount

    def turn_read_only(self):
        """Make the kernel report an ext4 error: mounted with
        ``errors=remount-ro``, the file system turns read-only at once
        (writes then fail with EROFS), as after a real disk error."""
        trigger = '/sys/fs/ext4/%s/trigger_fs_error' % os.path.basename(
            self.live.device)
        if not os.path.exists(trigger):
            import pytest
            pytest.skip('this kernel has no %s to turn ext4 read-only'
                        % trigger)
        with open(trigger, 'w') as f:
            f.write('test: turning read-only\n')

    def snapshot(self):
        """Copy the image as the disk holds it now (the power cut)."""
        self.snapshots += 1
        copy = os.path.join(self.workdir, 'cut-%d.img' % self.snapshots)
        shutil.copyfile(self.image, copy)
        return copy

    def mount_copy(self, copy):
        """fsck the snapshot (replaying its journal; exit codes 0-2 mean
        clean or fixed), then mount it; returns the mount (``release()``
        it) and the fsck output."""
        fsck = _run('e2fsck', '-fy', copy, check=False)
        if fsck.returncode > 2:
            raise AssertionError('e2fsck could not fix the cut image (exit '
                                 '%d):\n%s' % (fsck.returncode,
                                               fsck.stdout.decode()))
        mount = self._mount(copy, 'after-%d' % self.snapshots, 'defaults')
        return mount, fsck.stdout.decode()

    def release(self, mount):
        """Unmount a copy's mount and delete its image."""
        mount.close()
        self.mounts.remove(mount)
        if mount.image != self.image:
            os.unlink(mount.image)

    def close(self):
        for mount in reversed(self.mounts):
            mount.close()
        self.mounts = []
