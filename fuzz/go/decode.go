// Command decode says how Go's encoding/json reads JSON objects into struct
// fields, for vfplex's model of it (vfplex_config::caseless) to be checked
// against: the differential test and the go_view fuzz target run it.
//
// It prints {"version": runtime.Version()} first, then answers each line of
// stdin, a request {"doc": <JSON text>, "path": [names], "fields": [names]},
// with one line: the doc is descended along path (each step a struct field:
// the value the decoder delivered to it last), and for each field of the
// object reached, how many of its keys the decoder delivered to that field and
// the last value's JSON text — or {"err": ...} where Go refuses the document.
package main

import (
	"bufio"
	"encoding/json"
	"os"
	"reflect"
	"runtime"
	"strconv"
)

// counter counts the keys the decoder delivers to its field.
type counter struct {
	n    int
	last json.RawMessage
}

func (c *counter) UnmarshalJSON(b []byte) error {
	c.n++
	c.last = append(c.last[:0], b...)
	return nil
}

type request struct {
	Doc    string   `json:"doc"`
	Path   []string `json:"path"`
	Fields []string `json:"fields"`
}

// field: the keys delivered, and the last one's value as its JSON text (a
// string, so that numbers reach the other side digit for digit).
type field struct {
	N    int    `json:"n"`
	Last string `json:"last,omitempty"`
}

type answer struct {
	Err    string  `json:"err,omitempty"`
	Fields []field `json:"fields,omitempty"`
}

// read decodes doc into a struct whose fields are tagged names.
func read(doc []byte, names []string) ([]counter, error) {
	fs := make([]reflect.StructField, len(names))
	for i, n := range names {
		fs[i] = reflect.StructField{
			Name: "F" + strconv.Itoa(i),
			Type: reflect.TypeOf(counter{}),
			Tag:  reflect.StructTag(`json:"` + n + `"`),
		}
	}
	v := reflect.New(reflect.StructOf(fs)).Elem()
	if err := json.Unmarshal(doc, v.Addr().Interface()); err != nil {
		return nil, err
	}
	out := make([]counter, len(names))
	for i := range names {
		out[i] = *v.Field(i).Addr().Interface().(*counter)
	}
	return out, nil
}

func serve(r request) answer {
	doc := []byte(r.Doc)
	for _, step := range r.Path {
		c, err := read(doc, []string{step})
		if err != nil {
			return answer{Err: err.Error()}
		}
		if c[0].n == 0 {
			return answer{Err: "absent: " + step}
		}
		doc = c[0].last
	}
	cs, err := read(doc, r.Fields)
	if err != nil {
		return answer{Err: err.Error()}
	}
	out := answer{Fields: make([]field, len(cs))}
	for i, c := range cs {
		out.Fields[i] = field{N: c.n, Last: string(c.last)}
	}
	return out
}

func main() {
	w := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(w)
	enc.Encode(map[string]string{"version": runtime.Version()})
	w.Flush()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	for in.Scan() {
		var r request
		if err := json.Unmarshal(in.Bytes(), &r); err != nil {
			enc.Encode(answer{Err: "bad request: " + err.Error()})
		} else {
			enc.Encode(serve(r))
		}
		w.Flush()
	}
}
