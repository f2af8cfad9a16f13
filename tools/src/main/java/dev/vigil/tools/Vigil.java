package dev.vigil.tools;

import dev.vigil.config.ConfigException;
import dev.vigil.job.VigilJob;
import dev.vigil.model.ModelException;
import dev.vigil.testdata.FleetGenerator;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * The local command line behind {@code ./vigil}: each subcommand is one thing a user does on this
 * machine. The cluster entry point is {@link VigilJob}.
 */
public final class Vigil {

    private Vigil() {}

    public static void main(String[] argv) {
        System.exit(run(argv, System.out, System.err));
    }

    static int run(String[] argv, PrintStream out, PrintStream err) {
        Path home = Path.of(System.getProperty("vigil.home", "."));
        if (argv.length == 0 || argv[0].equals("help") || argv[0].equals("--help")) {
            out.println(usage());
            return argv.length == 0 ? 2 : 0;
        }
        String[] rest = Arrays.copyOfRange(argv, 1, argv.length);
        try {
            return switch (argv[0]) {
                case "demo" -> new DemoCommand(out, home).run(rest);
                case "evaluate" -> new EvaluateCommand(out, home).run(rest);
                case "inspect-savepoint" -> new InspectSavepointCommand(out, err).run(rest);
                case "reset-device" -> new ResetDeviceCommand(out, err).run(rest);
                case "promote-shadow" -> new PromoteShadowCommand(out).run(rest);
                case "testdata" -> {
                    Path dir =
                            rest.length > 0 ? Path.of(rest[0]) : home.resolve("testdata/generated");
                    new FleetGenerator(FleetGenerator.Spec.defaults()).writeTo(dir);
                    out.println("wrote train.jsonl, test.jsonl and labels.csv to " + dir);
                    yield 0;
                }
                case "job" -> {
                    VigilJob.main(rest);
                    yield 0;
                }
                default -> {
                    err.println("vigil: unknown command '" + argv[0] + "'\n" + usage());
                    yield 2;
                }
            };
        } catch (Args.UsageException | ConfigException | ModelException e) {
            err.println("vigil " + argv[0] + ": " + e.getMessage());
            return 2;
        } catch (Exception e) {
            err.println("vigil " + argv[0] + " failed: " + e);
            e.printStackTrace(err);
            return 1;
        }
    }

    static String usage() {
        return String.join(
                "\n",
                "usage: ./vigil COMMAND [options]",
                "  " + DemoCommand.USAGE,
                "      the whole path on this machine: embedded Kafka, Flink mini cluster, report",
                "  " + EvaluateCommand.USAGE,
                "      precision, recall, F1 (event- and point-wise), detection delay, by kind",
                "  " + InspectSavepointCommand.USAGE,
                "      each device's state in a savepoint (one row per device), or one device's in"
                        + " full",
                "  " + ResetDeviceCommand.USAGE,
                "      a copy of a savepoint with those devices reset (memory and profile) or"
                        + " dropped",
                "  " + PromoteShadowCommand.USAGE,
                "      a copy of a savepoint in which the serving and shadow states trade places",
                "  vigil testdata [DIR]      generate the labelled test fleet (default"
                        + " testdata/generated)",
                "  vigil train --train FILE.jsonl --out DIR [--labels FILE] [--hidden N]"
                        + " [--epochs N] [--max-minutes M] [--seed S]",
                "      train a GRU forecaster (PyTorch) and export model.onnx + model.json",
                "  vigil job --config FILE [-Dkey=value ...]",
                "      run the job against a real Kafka from this machine (a local mini cluster)",
                "  vigil bench [--quick] [--report FILE] | --jmh | --soak MINUTES [--rate EPS]",
                "      throughput and latency beside baselines; JMH; memory over a steady run",
                "  vigil chaos [--cases a,b] [--rate EPS]",
                "      fault campaign on the standalone cluster of deploy/local (TaskManager"
                        + " kills, broker restart)");
    }
}
