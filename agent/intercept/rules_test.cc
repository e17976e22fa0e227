#include "agent/intercept/rules.h"

#include <gtest/gtest.h>

namespace meshplug::agent::intercept {
namespace {

TEST(InterceptRules, RedirectEverythingButTheAgentsOwnTrafficAndExclusions) {
  Options o;
  o.exclude_outbound_cidrs = {"10.0.0.1/32", "fd00::1/128"};
  o.exclude_outbound_ports = {22};
  o.exclude_inbound_ports = {9901};
  EXPECT_EQ(InstallScript(o, false),
            "*nat\n"
            ":MESHPLUG_OUTPUT - [0:0]\n:MESHPLUG_INBOUND - [0:0]\n:MESHPLUG_REDIRECT - [0:0]\n"
            ":MESHPLUG_IN_REDIRECT - [0:0]\n:MESHPLUG_DNS - [0:0]\n"
            "-F MESHPLUG_OUTPUT\n-F MESHPLUG_INBOUND\n-F MESHPLUG_REDIRECT\n-F MESHPLUG_IN_REDIRECT\n-F MESHPLUG_DNS\n"
            "-A PREROUTING -p tcp -j MESHPLUG_INBOUND\n"
            "-A OUTPUT -p tcp -j MESHPLUG_OUTPUT\n"
            "-A MESHPLUG_REDIRECT -p tcp --syn -j REDIRECT --to-ports 15001\n"
            "-A MESHPLUG_IN_REDIRECT -p tcp --syn -j REDIRECT --to-ports 15003\n"
            "-A MESHPLUG_INBOUND -p tcp --dport 15003 -j RETURN\n"
            "-A MESHPLUG_INBOUND -p tcp --dport 15001 -j MESHPLUG_IN_REDIRECT\n"
            "-A MESHPLUG_INBOUND -p tcp --dport 9901 -j RETURN\n"
            "-A MESHPLUG_INBOUND -p tcp -j MESHPLUG_IN_REDIRECT\n"
            "-A MESHPLUG_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
            "-A MESHPLUG_OUTPUT -o lo -j RETURN\n"
            "-A MESHPLUG_OUTPUT -p tcp --dport 22 -j RETURN\n"
            "-A MESHPLUG_OUTPUT -d 10.0.0.1/32 -j RETURN\n"
            "-A MESHPLUG_OUTPUT -j MESHPLUG_REDIRECT\n"
            "COMMIT\n");
  // The IPv6 table gets the IPv6 exclusion only.
  const std::string v6 = InstallScript(o, true);
  EXPECT_NE(v6.find("-A MESHPLUG_OUTPUT -d fd00::1/128 -j RETURN\n"), std::string::npos);
  EXPECT_EQ(v6.find("10.0.0.1"), std::string::npos);
}

TEST(InterceptRules, DnsGoesToTheAgentExceptItsOwnQueries) {
  Options o;
  o.dns_port = 15053;
  const std::string s = InstallScript(o, false);
  EXPECT_NE(s.find("-A OUTPUT -p udp --dport 53 -j MESHPLUG_DNS\n"
                   "-A MESHPLUG_DNS -m owner --uid-owner 1337 -j RETURN\n"
                   "-A MESHPLUG_DNS -p udp -j REDIRECT --to-ports 15053\n"),
            std::string::npos)
      << s;
  EXPECT_EQ(InstallScript(o, true).find("udp"), std::string::npos);  // the agent answers on IPv4
  EXPECT_EQ(InstallScript(Options{}, false).find("udp"), std::string::npos);
}

TEST(InterceptRules, OnlyTheListedInboundPorts) {
  Options o;
  o.include_inbound_ports = {"8080", "9090"};
  const std::string s = InstallScript(o, false);
  EXPECT_NE(s.find("-A MESHPLUG_INBOUND -p tcp --dport 8080 -j MESHPLUG_IN_REDIRECT\n"), std::string::npos);
  EXPECT_NE(s.find("-A MESHPLUG_INBOUND -p tcp --dport 9090 -j MESHPLUG_IN_REDIRECT\n"), std::string::npos);
  EXPECT_EQ(s.find("-A MESHPLUG_INBOUND -p tcp -j MESHPLUG_IN_REDIRECT"), std::string::npos);
  // The outbound port goes to the inbound listener even when it is not listed.
  EXPECT_NE(s.find("-A MESHPLUG_INBOUND -p tcp --dport 15001 -j MESHPLUG_IN_REDIRECT\n"), std::string::npos);
}

TEST(InterceptRules, RemovalUnhooksFlushesAndDeletesEveryChain) {
  const auto commands = RemoveCommands();
  ASSERT_EQ(commands.size(), 3 + 2 * ChainNames().size());
  EXPECT_EQ(commands[0], (std::vector<std::string>{"-t", "nat", "-D", "PREROUTING", "-p", "tcp", "-j", "MESHPLUG_INBOUND"}));
  EXPECT_EQ(commands.back(), (std::vector<std::string>{"-t", "nat", "-X", "MESHPLUG_DNS"}));
}

TEST(InterceptRules, BadOptionsNameTheFlag) {
  Options o;
  o.inbound_port = o.outbound_port;
  EXPECT_EQ(Validate(o).message(), "--outbound_port and --inbound_port must be two different ports (1-65535)");
  o = Options{};
  o.exclude_outbound_cidrs = {"10.0.0.0/33"};
  EXPECT_EQ(Validate(o).message(), "--exclude_outbound_cidrs: \"10.0.0.0/33\" is not an address or CIDR");
  o.exclude_outbound_cidrs = {"not-an-ip"};
  EXPECT_FALSE(Validate(o).ok());
  o = Options{};
  o.include_inbound_ports = {"*", "80"};
  EXPECT_EQ(Validate(o).message(), "--include_inbound_ports: \"*\" means every port; list no others with it");
  o.include_inbound_ports = {"70000"};
  EXPECT_EQ(Validate(o).message(), "--include_inbound_ports: \"70000\" is not a port (1-65535)");
  o = Options{};
  o.exclude_outbound_cidrs = {"fd00::/8", "192.168.0.0/16"};
  EXPECT_TRUE(Validate(o).ok());
  o.exclude_inbound_ports = {15001};
  EXPECT_FALSE(Validate(o).ok());
}

}  // namespace
}  // namespace meshplug::agent::intercept
