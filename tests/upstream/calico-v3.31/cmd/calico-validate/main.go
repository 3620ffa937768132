// Command calico-validate judges IPPools with Calico's own code, for ippool's differential test
// (kubectl-ippool/tests/calico_differential.rs).
//
// Input: one projectcalico.org/v3 IPPool object per line of stdin, as JSON. Output: one JSON line per
// input line, in order: {"line":N,"name":"…","valid":bool,"errors":[{"field":"…","reason":"…"}]}.
// A field is Calico's name for what it refused; "decode" means the line does not decode into
// Calico's IPPool type (as the API server would refuse the body), "create" an error other than a
// validation error.
//
// The verdict is Calico's create path, not its struct validator alone: calicoctl create and
// calico-apiserver both call clientv3's IPPools().Create, which first defaults the pool and applies
// the checks of its validateAndSetDefaults (CIDR parsing and normalisation, blockSize range, pool
// size, encapsulation, link-local), then runs validator/v3's Validate on the defaulted pool. Calling
// Validate on the pool as written would judge fields Calico never sees unset (an IPv6 pool without
// ipipMode, a LoadBalancer pool without nodeSelector) and skip the blockSize range. Create runs here
// against an empty Kubernetes datastore served by this process, so the checks that need other objects
// (overlap with existing pools, IPAM blocks of another size) find nothing, as `kubectl ippool
// validate` without context skips them.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	apiv3 "github.com/projectcalico/api/pkg/apis/projectcalico/v3"
	"github.com/projectcalico/calico/libcalico-go/lib/apiconfig"
	"github.com/projectcalico/calico/libcalico-go/lib/clientv3"
	cerrors "github.com/projectcalico/calico/libcalico-go/lib/errors"
	"github.com/projectcalico/calico/libcalico-go/lib/options"
	log "github.com/sirupsen/logrus"
	k8sjson "sigs.k8s.io/json"
)

// Largest input line: the biggest legal IPPool carries 256 KiB of annotations.
const maxLine = 4 << 20

type fieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

type verdict struct {
	Line   int          `json:"line"`
	Name   string       `json:"name"`
	Valid  bool         `json:"valid"`
	Errors []fieldError `json:"errors"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "calico-validate:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	// Calico logs every request at info level; only the verdicts belong on stdout.
	log.SetLevel(log.ErrorLevel)
	datastore := httptest.NewServer(http.HandlerFunc(emptyDatastore))
	defer datastore.Close()
	cfg := apiconfig.NewCalicoAPIConfig()
	cfg.Spec.DatastoreType = apiconfig.Kubernetes
	cfg.Spec.K8sAPIEndpoint = datastore.URL
	// client-go's default of 5 requests/s would make thousands of pools take many minutes.
	cfg.Spec.K8sClientQPS = 1e6
	client, err := clientv3.New(*cfg)
	if err != nil {
		return fmt.Errorf("cannot build Calico's client: %w", err)
	}
	pools := client.IPPools()

	scanner := bufio.NewScanner(in)
	scanner.Buffer(make([]byte, 64<<10), maxLine)
	encoder := json.NewEncoder(out)
	encoder.SetEscapeHTML(false)
	for line := 1; scanner.Scan(); line++ {
		v := verdict{Line: line, Valid: true, Errors: []fieldError{}}
		var pool apiv3.IPPool
		// Decoded as the API server decodes a request body: field names are case-sensitive and
		// unknown fields are dropped.
		if err := k8sjson.UnmarshalCaseSensitivePreserveInts(scanner.Bytes(), &pool); err != nil {
			v.Valid = false
			v.Errors = append(v.Errors, fieldError{Field: "decode", Reason: err.Error()})
		} else {
			v.Name = pool.Name
			_, err := pools.Create(context.Background(), &pool, options.SetOptions{})
			var invalid cerrors.ErrorValidation
			switch {
			case err == nil:
			case errors.As(err, &invalid):
				v.Valid = false
				for _, f := range invalid.ErroredFields {
					v.Errors = append(v.Errors, fieldError{
						Field:  f.Name,
						Reason: strings.TrimSpace(strings.TrimPrefix(f.Reason, "Reason: ")),
					})
				}
			default:
				// Calico refused the pool some other way (e.g. a uid it cannot parse), or this
				// process's datastore answered something unexpected: reported as field "create", which
				// the differential test does not map to a rule, so it fails showing the text.
				v.Valid = false
				v.Errors = append(v.Errors, fieldError{Field: "create", Reason: err.Error()})
			}
		}
		if err := encoder.Encode(v); err != nil {
			return err
		}
	}
	if err := scanner.Err(); err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	return nil
}

// emptyDatastore answers the Kubernetes API requests clientv3's IPPool Create makes, as a cluster
// holding no pools and no IPAM blocks, and accepts every created pool without keeping it: each input
// is judged on its own. Any other request is refused, which fails the run.
func emptyDatastore(w http.ResponseWriter, r *http.Request) {
	const group = "/apis/crd.projectcalico.org/v1/"
	resource := strings.ToLower(strings.TrimPrefix(r.URL.Path, group))
	w.Header().Set("Content-Type", "application/json")
	switch {
	case !strings.HasPrefix(r.URL.Path, group):
	case r.Method == http.MethodGet && resource == "ippools":
		fmt.Fprint(w, `{"apiVersion":"crd.projectcalico.org/v1","kind":"IPPoolList","metadata":{"resourceVersion":"1"},"items":[]}`)
		return
	case r.Method == http.MethodGet && resource == "ipamblocks":
		fmt.Fprint(w, `{"apiVersion":"crd.projectcalico.org/v1","kind":"IPAMBlockList","metadata":{"resourceVersion":"1"},"items":[]}`)
		return
	case r.Method == http.MethodPost && resource == "ippools":
		created, err := stamped(r.Body)
		if err == nil {
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(created)
			return
		}
	}
	w.WriteHeader(http.StatusNotFound)
	fmt.Fprintf(w, `{"apiVersion":"v1","kind":"Status","status":"Failure","reason":"NotFound","code":404,"message":%q}`,
		"calico-validate's datastore does not serve "+r.Method+" "+r.URL.Path)
}

// stamped is the posted object with the resourceVersion a datastore gives a new object.
func stamped(body io.Reader) ([]byte, error) {
	var object map[string]any
	if err := json.NewDecoder(body).Decode(&object); err != nil {
		return nil, err
	}
	metadata, _ := object["metadata"].(map[string]any)
	if metadata == nil {
		metadata = map[string]any{}
		object["metadata"] = metadata
	}
	metadata["resourceVersion"] = "1"
	return json.Marshal(object)
}
