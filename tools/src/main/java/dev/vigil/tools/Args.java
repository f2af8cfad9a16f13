package dev.vigil.tools;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * {@code --name value} options of a subcommand, checked against the names it accepts; {@value
 * #SET}, when accepted, may repeat ({@link #settings()}).
 */
final class Args {

    /** {@code --set KEY=VALUE}: a job option for the run, as the job's configuration takes it. */
    static final String SET = "--set";

    private final Map<String, String> values = new HashMap<>();
    private final Map<String, String> settings = new LinkedHashMap<>();

    Args(String command, String[] args, Set<String> withValue) {
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals(SET) && withValue.contains(a) && i + 1 < args.length) {
                String[] kv = args[++i].split("=", 2);
                if (kv.length != 2 || kv[0].isBlank()) {
                    throw new UsageException(SET + " needs KEY=VALUE, was '" + args[i] + "'");
                }
                settings.put(kv[0], kv[1]);
            } else if (withValue.contains(a) && i + 1 < args.length) {
                values.put(a, args[++i]);
            } else {
                throw new UsageException(
                        command
                                + ": unknown or incomplete option '"
                                + a
                                + "'; options: "
                                + String.join(" ", withValue.stream().sorted().toList()));
            }
        }
    }

    /** The {@value #SET} options in the order given (a key given twice: its last value). */
    Map<String, String> settings() {
        return settings;
    }

    String get(String name) {
        return values.get(name);
    }

    Path path(String name) {
        String v = values.get(name);
        return v == null ? null : Path.of(v);
    }

    int intValue(String name, int fallback) {
        String v = values.get(name);
        try {
            return v == null ? fallback : Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new UsageException(name + " needs a whole number, was '" + v + "'");
        }
    }

    /** A command line the user must correct; printed without a stack trace. */
    static final class UsageException extends RuntimeException {
        UsageException(String message) {
            super(message);
        }
    }
}
