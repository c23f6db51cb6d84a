package hotswap

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// stateFormat names the layout of the state blob. A new instance refuses
// any other, so a build that changes the layout must change the name: the
// old instance then keeps serving instead of being misunderstood.
const stateFormat = "yakimg-testbins-handoff/1"

// state is the blob an old instance hands over, as JSON. Byte strings are
// base64, as encoding/json writes them.
type state struct {
	Format     string      `json:"format"`     // stateFormat
	Service    string      `json:"service"`    // only a service of that name adopts it
	Generation int         `json:"generation"` // handoffs so far; the new instance's is one more
	NextConn   uint64      `json:"next_conn"`  // the number of the next connection's name
	Conns      []connState `json:"conns"`      // every connection handed over, in name order
}

// connState is what one handed-over connection was in the middle of.
type connState struct {
	Name    string `json:"name"`               // the connection's descriptor name in the handoff
	Pending []byte `json:"pending,omitempty"`  // read from the client, not yet consumed
	Unsent  []byte `json:"unsent,omitempty"`   // answer not yet written, sent first
	File    string `json:"file,omitempty"`     // a handed-over file being sent after Unsent
	FileEnd int64  `json:"file_end,omitempty"` // the file offset where that sending ends
	Close   bool   `json:"close,omitempty"`    // end the connection once all that is sent
}

// decodeState reads a blob for the service called name.
func decodeState(blob []byte, name string) (*state, error) {
	d := json.NewDecoder(bytes.NewReader(blob))
	d.DisallowUnknownFields()
	var st state
	if err := d.Decode(&st); err != nil {
		return nil, fmt.Errorf("state blob: %w", err)
	}
	switch {
	case st.Format != stateFormat:
		return nil, fmt.Errorf("state blob: format %q, this build reads %q", st.Format, stateFormat)
	case st.Service != name:
		return nil, fmt.Errorf("state blob: it is %s's, this is %s", st.Service, name)
	case st.Generation < 0:
		return nil, fmt.Errorf("state blob: generation %d", st.Generation)
	}
	return &st, nil
}
