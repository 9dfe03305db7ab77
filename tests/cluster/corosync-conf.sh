# shellcheck shell=bash
# corosync_conf CLUSTER_NAME TRANSPORT TOKEN_MS ADDR_A ADDR_B: corosync.conf
# of the two-node test clusters (node a = 1, node b = 2; votequorum
# two_node; logs to standard error), for tests/cluster/netns.sh and the VM
# guests (tests/vm/guest/cluster-lib.sh).
corosync_conf() {
	cat << EOC
totem {
	version: 2
	cluster_name: $1
	transport: $2
	crypto_cipher: none
	crypto_hash: none
	token: $3
}
nodelist {
	node {
		ring0_addr: $4
		name: a
		nodeid: 1
	}
	node {
		ring0_addr: $5
		name: b
		nodeid: 2
	}
}
quorum {
	provider: corosync_votequorum
	two_node: 1
}
logging {
	to_stderr: yes
	to_syslog: no
	to_logfile: no
	timestamp: hires
}
EOC
}
