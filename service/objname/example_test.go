package objname_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/greeter/greeter/service/objname"
)

func ExampleValidate() {
	for _, name := range []string{
		objname.Join("reports/2024", ".pdf"),
		"../etc/passwd",
		"invoice\u202efdp.exe",
	} {
		err := objname.Validate(name)
		var e *objname.Error
		if errors.As(err, &e) {
			fmt.Printf("%q: rejected (%s): %v\n", name, e.Rule, e)
			continue
		}
		fmt.Printf("%q: ok\n", name)
	}
	// Output:
	// "reports/2024.pdf": ok
	// "../etc/passwd": rejected (segment): name segment ".." is not allowed
	// "invoice\u202efdp.exe": rejected (format): name contains an invisible formatting character (U+202E) at byte 7
}

func ExampleQuote() {
	fmt.Println(objname.Quote("report\n.pdf"))
	fmt.Println(objname.Quote(strings.Repeat("a/", 600)))
	// Output:
	// "report\n.pdf"
	// "a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/"…(1200 bytes)
}
