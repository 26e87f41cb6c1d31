#!/usr/bin/env python3
"""A deliberately small download cache for the suite's self-check (`tests/self_check.rs`).

Correct by default: one flock per entry, download into a unique temp file, fsync, rename, fsync the
directory. `TOY_CACHE_BUG` switches on one textbook mistake, so the self-check can show that each
file-system invariant fails on a real process doing the wrong thing (and holds when it does not):
  copy-into-final  write the body straight under the final name (not atomic)
  no-fsync         rename without fsyncing the bytes or the directory
  unlink-lock      delete the lock file while releasing it (waiters hold the old inode)
  no-lock          no lock at all
Usage: toy-cache.py URL CACHE_DIR OUT_FILE
"""
import fcntl
import hashlib
import os
import shutil
import sys
import urllib.request


def main():
    url, cache, out = sys.argv[1:4]
    bug = os.environ.get("TOY_CACHE_BUG", "")
    os.makedirs(cache, exist_ok=True)
    final = os.path.join(cache, hashlib.sha256(url.encode()).hexdigest()[:16] + ".bin")
    lock = open(final + ".lock", "a+")
    if bug != "no-lock":
        fcntl.flock(lock, fcntl.LOCK_EX)
    if not os.path.exists(final):
        data = urllib.request.urlopen(url, timeout=10).read()
        if bug == "copy-into-final":
            with open(final, "wb") as f:
                f.write(data)
        else:
            tmp = "%s.%d.part" % (final, os.getpid())
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                if bug != "no-fsync":
                    os.fsync(f.fileno())
            os.rename(tmp, final)
            if bug != "no-fsync":
                fd = os.open(cache, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
    if bug == "unlink-lock":
        os.unlink(final + ".lock")
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()
    shutil.copyfile(final, out)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except OSError as e:
        print("toy-cache: error: %s" % e, file=sys.stderr)
        sys.exit(2)
