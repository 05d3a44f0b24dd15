// kubeplane is Kubernetes' own control plane, etcd and kubectl linked into one binary, the way
// hyperkube once shipped them: one link instead of five keeps a cold build within CI's budget.
// Nothing here changes upstream behaviour; each subcommand is upstream's own main.
//
//	kubeplane etcd ...                     go.etcd.io/etcd/server/v3/etcdmain
//	kubeplane kube-apiserver ...           k8s.io/kubernetes/cmd/kube-apiserver
//	kubeplane kube-controller-manager ...  k8s.io/kubernetes/cmd/kube-controller-manager
//	kubeplane kube-scheduler ...           k8s.io/kubernetes/cmd/kube-scheduler
//	kubeplane kubectl ...                  k8s.io/kubectl
package main

import (
	"fmt"
	"os"
	_ "time/tzdata" // for timeZone support in CronJob, as kube-apiserver's main has it

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectl "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kubeplane etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubectl [flags]")
		os.Exit(2)
	}
	name, args := os.Args[1], os.Args[2:]
	var command *cobra.Command
	switch name {
	case "etcd":
		etcdmain.Main(append([]string{"etcd"}, args...))
		return
	case "kube-apiserver":
		command = apiserver.NewAPIServerCommand()
	case "kube-controller-manager":
		command = controllermanager.NewControllerManagerCommand()
	case "kube-scheduler":
		command = scheduler.NewSchedulerCommand()
	case "kubectl":
		os.Args = append([]string{"kubectl"}, args...)
		logs.GlogSetter(kubectl.GetLogVerbosity(os.Args)) // nolint:errcheck
		command = kubectl.NewDefaultKubectlCommand()
		if err := cli.RunNoErrOutput(command); err != nil {
			kubectlutil.CheckErr(err)
		}
		return
	default:
		fmt.Fprintf(os.Stderr, "kubeplane: unknown command %q\n", name)
		os.Exit(2)
	}
	command.SetArgs(args)
	os.Exit(cli.Run(command))
}
