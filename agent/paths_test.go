package agent_test

import (
	"testing"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/images/rootfs"
)

func TestPathsAreWhereTheImageInstallsThem(t *testing.T) {
	for _, p := range []struct{ agent, image string }{
		{agent.ReleaseKeyPath, rootfs.ReleaseKeyPath},
		{agent.TrustedRootPath, rootfs.TUFRootPath},
		{agent.BoardPath, rootfs.BoardPath},
		{agent.K3sImagePath, rootfs.K3sPath},
	} {
		if p.agent != "/"+p.image {
			t.Errorf("the agent reads %s, the image installs /%s", p.agent, p.image)
		}
	}
}
