// The test bed's Chaos Mesh controller-manager: Chaos Mesh's own controllers for the two kinds
// of chaos the project creates (PodChaos and NetworkChaos), wired with the same fx modules as
// Chaos Mesh's cmd/chaos-controller-manager, without the rest.
//
// Left out: the cloud chaos kinds (AWS, Azure, GCP and their SDKs), the other pod chaos kinds,
// workflows, schedules, status checks, multi-cluster and its Helm client, and the admission
// webhooks (the test bed registers none: ENABLED_WEBHOOKS=none). That is about a third less
// source to compile on a cold machine (chaosregistry/cluster/build.py). Configured by
// environment exactly as Chaos Mesh's binary is (controllers/config).
//
// Built inside a copy of Chaos Mesh's module (its replace directives apply there), from
// cmd/testbed-chaos-controller.
package main

import (
	stdlog "log"
	"os"

	"go.uber.org/fx"
	ctrl "sigs.k8s.io/controller-runtime"
	controllermetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/chaos-mesh/chaos-mesh/cmd/chaos-controller-manager/provider"
	"github.com/chaos-mesh/chaos-mesh/controllers/chaosimpl/networkchaos"
	"github.com/chaos-mesh/chaos-mesh/controllers/chaosimpl/podchaos"
	implutils "github.com/chaos-mesh/chaos-mesh/controllers/chaosimpl/utils"
	"github.com/chaos-mesh/chaos-mesh/controllers/common"
	ccfg "github.com/chaos-mesh/chaos-mesh/controllers/config"
	"github.com/chaos-mesh/chaos-mesh/controllers/multicluster/clusterregistry"
	"github.com/chaos-mesh/chaos-mesh/controllers/podnetworkchaos"
	"github.com/chaos-mesh/chaos-mesh/controllers/utils/chaosdaemon"
	"github.com/chaos-mesh/chaos-mesh/controllers/utils/recorder"
	grpcutils "github.com/chaos-mesh/chaos-mesh/pkg/grpc"
	"github.com/chaos-mesh/chaos-mesh/pkg/log"
	"github.com/chaos-mesh/chaos-mesh/pkg/metrics"
	"github.com/chaos-mesh/chaos-mesh/pkg/selector"
	"github.com/chaos-mesh/chaos-mesh/pkg/version"
)

func main() {
	version.PrintVersionInfo("Controller manager (test bed: PodChaos and NetworkChaos)")
	logger, err := log.NewDefaultZapLogger()
	if err != nil {
		stdlog.Fatal("no logger: ", err)
	}
	log.ReplaceGlobals(logger)
	ctrl.SetLogger(logger)
	grpcutils.RPCTimeout = ccfg.ControllerCfg.RPCTimeout
	fx.New(
		fx.Supply(controllermetrics.Registry),
		fx.Supply(logger),
		fx.Provide(metrics.NewChaosControllerManagerMetricsCollector),
		provider.Module,
		selector.Module,
		// The common pipeline (finalizers, desired phase, records, conditions) every chaos
		// kind runs through; the cluster registry is what its steps ask for remote objects.
		fx.Provide(chaosdaemon.New, recorder.NewRecorderBuilder, common.AllSteps, clusterregistry.New),
		fx.Invoke(common.Bootstrap),
		// NetworkChaos is carried out through PodNetworkChaos objects, one per pod.
		fx.Invoke(podnetworkchaos.Bootstrap),
		networkchaos.Module,
		podchaos.Module,
		implutils.Module,
		fx.Invoke(run),
	).Run()
}

// run starts the manager once every controller is registered with it; the metrics collector
// is asked for so that fx builds it (it registers Chaos Mesh's metrics).
func run(mgr ctrl.Manager, _ *metrics.ChaosControllerManagerMetricsCollector) {
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		stdlog.Print("the manager stopped: ", err)
		os.Exit(1)
	}
}
