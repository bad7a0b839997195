package history

import (
	"errors"
	"io"
)

// ReadEDN reads a Jepsen EDN history. (Placeholder until the importer lands.)
func ReadEDN(r io.Reader, name string) (History, error) {
	return nil, errors.New("EDN import is not built yet")
}
