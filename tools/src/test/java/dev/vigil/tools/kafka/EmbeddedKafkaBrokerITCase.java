package dev.vigil.tools.kafka;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assumptions.assumeThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.Test;

/**
 * The in-process broker listens on loopback only, never on every interface, and leaves no directory
 * behind when it fails to start.
 */
class EmbeddedKafkaBrokerITCase {

    /** Local addresses (hex, as the kernel lists them) of the sockets listening on a port. */
    private static List<String> listeningOn(int port) throws Exception {
        List<String> addresses = new ArrayList<>();
        String hexPort = String.format(Locale.ROOT, "%04X", port);
        for (String table : List.of("/proc/net/tcp", "/proc/net/tcp6")) {
            Path file = Path.of(table);
            if (!Files.exists(file)) {
                continue;
            }
            for (String line : Files.readAllLines(file)) {
                String[] f = line.trim().split("\\s+");
                // local_address is ADDR:PORT; state 0A is LISTEN
                if (f.length > 3 && f[1].endsWith(":" + hexPort) && f[3].equals("0A")) {
                    addresses.add(f[1].substring(0, f[1].indexOf(':')));
                }
            }
        }
        return addresses;
    }

    @Test
    void shouldListenOnLoopbackOnly() throws Exception {
        assumeThat(Path.of("/proc/net/tcp")).as("a Linux socket table").exists();
        try (EmbeddedKafkaBroker kafka = EmbeddedKafkaBroker.start()) {
            String bootstrap = kafka.bootstrapServers();
            int port = Integer.parseInt(bootstrap.substring(bootstrap.lastIndexOf(':') + 1));

            // 127.0.0.1 is 0100007F in the kernel's little-endian hex, ::ffff:127.0.0.1 (a Java
            // dual-stack socket) ends with it; a socket on every interface would be all zeros.
            assertThat(listeningOn(port)).isNotEmpty().allMatch(a -> a.endsWith("0100007F"));
        }
    }

    @Test
    void shouldLeaveNoDirectoryWhenItFailsToStart() throws Exception {
        // where Files makes temporary directories (not always java.io.tmpdir's value today)
        Path probe = Files.createTempDirectory("probe-");
        Path tmp = probe.getParent();
        Files.delete(probe);
        List<Path> before = brokerDirectories(tmp);

        // no password: the admin's credential cannot be made, after the directory was
        assertThatThrownBy(() -> EmbeddedKafkaBroker.startWithScram("admin", null))
                .isInstanceOf(NullPointerException.class)
                .hasStackTraceContaining("scramRecord");

        assertThat(brokerDirectories(tmp)).isSubsetOf(before);
    }

    private static List<Path> brokerDirectories(Path tmp) throws Exception {
        try (var dirs = Files.list(tmp)) {
            return dirs.filter(d -> d.getFileName().toString().startsWith("vigil-kafka-")).toList();
        }
    }
}
