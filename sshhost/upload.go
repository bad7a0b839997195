package sshhost

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"time"
)

// receiveScript writes its standard input to the temporary file $2 (mode
// 0600) in the directory $1, which it makes when missing.
const receiveScript = `set -e
mkdir -p -- "$1"
umask 077
cat > "$2"
`

// installScript gives the temporary file $1 the mode $2 and renames it
// over $3 (never into $3, should $3 be a directory).
const installScript = `set -e
chmod "$2" "$1"
mv -fT -- "$1" "$3"
`

// Upload writes what r holds to the file path (absolute) on the host, as
// root, with mode's permission bits: through a session's standard input
// into a temporary file beside it, then, once all of r arrived, renamed
// over path. A reader of path sees the old file or the whole new one,
// never part of it; a failure (of r too) leaves the old file and removes
// the temporary one. The directory is made when missing.
func (h *Host) Upload(ctx context.Context, p string, mode fs.FileMode, r io.Reader) error {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("upload to %s: want a clean absolute path to a file", p)
	}
	var b [6]byte
	rand.Read(b[:])
	tmp := path.Join(path.Dir(p), ".eccheck-upload."+path.Base(p)+"."+hex.EncodeToString(b[:]))
	m := strconv.FormatUint(uint64(mode.Perm()), 8)
	_, _, err := h.sudo(ctx, "upload "+p, r, nil, "sh", "-c", receiveScript, "eccheck-upload", path.Dir(p), tmp)
	if err == nil {
		_, _, err = h.sudo(ctx, "install "+p, nil, nil, "sh", "-c", installScript, "eccheck-upload", tmp, m, p)
	}
	if err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, _, rerr := h.sudo(rctx, "remove "+tmp, nil, nil, "rm", "-f", "--", tmp); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return fmt.Errorf("upload: %w", err)
	}
	return nil
}

// Download copies the file path on the host (read as root) to w.
func (h *Host) Download(ctx context.Context, p string, w io.Writer) error {
	if !path.IsAbs(p) {
		return fmt.Errorf("download %s: want an absolute path", p)
	}
	if _, _, err := h.sudo(ctx, "download "+p, nil, w, "cat", "--", p); err != nil {
		return fmt.Errorf("download: %w", err)
	}
	return nil
}
