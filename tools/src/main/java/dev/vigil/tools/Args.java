package dev.vigil.tools;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;

/** {@code --name value} options of a subcommand, checked against the names it accepts. */
final class Args {

    private final Map<String, String> values = new HashMap<>();

    Args(String command, String[] args, Set<String> withValue) {
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (withValue.contains(a) && i + 1 < args.length) {
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
