// Command polis-datasource is the backend of the Polis Grafana datasource
// (plugin id polis-platform-datasource). Grafana starts it; it is not run
// by hand. Build it as plugins/grafana/dist/gpx_polis_linux_amd64 (see
// README.md, Grafana).
package main

import (
	"os"

	"github.com/grafana/grafana-plugin-sdk-go/backend/datasource"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	polisds "github.com/polis-platform/polis/plugins/grafana/pkg"
)

func main() {
	if err := datasource.Manage(polisds.PluginID, polisds.NewDatasource, datasource.ManageOpts{}); err != nil {
		log.DefaultLogger.Error("polis datasource stopped", "error", err.Error())
		os.Exit(1)
	}
}
