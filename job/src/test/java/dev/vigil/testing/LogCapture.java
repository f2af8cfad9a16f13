package dev.vigil.testing;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.Appender;
import org.apache.logging.log4j.core.LogEvent;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.appender.AbstractAppender;
import org.apache.logging.log4j.core.config.Configuration;
import org.apache.logging.log4j.core.config.LoggerConfig;
import org.apache.logging.log4j.core.config.Property;

/**
 * Records every log event of this JVM at INFO and above (and at DEBUG for the given loggers), with
 * its stack trace, while the console keeps showing only warnings. For asserting on what a run
 * logged, secrets above all; {@link #close()} restores the logging configuration.
 */
public final class LogCapture implements AutoCloseable {

    private static final String NAME = "vigil-log-capture";

    private final Queue<String> events = new ConcurrentLinkedQueue<>();
    private final LoggerContext context;
    private final Level rootLevel;
    private final Map<String, Appender> rootAppenders;
    private final List<String> debugLoggers;
    private final Appender appender;

    private LogCapture(List<String> debugLoggers) {
        this.context = (LoggerContext) LogManager.getContext(false);
        this.debugLoggers = debugLoggers;
        Configuration config = context.getConfiguration();
        LoggerConfig root = config.getRootLogger();
        this.rootLevel = root.getLevel();
        this.rootAppenders = Map.copyOf(root.getAppenders());
        this.appender =
                new AbstractAppender(NAME, null, null, true, Property.EMPTY_ARRAY) {
                    @Override
                    public void append(LogEvent event) {
                        events.add(format(event));
                    }
                };
        appender.start();
        // The console keeps its warnings-only view; the capture sees INFO and above.
        rootAppenders.keySet().forEach(root::removeAppender);
        rootAppenders.values().forEach(a -> root.addAppender(a, Level.WARN, null));
        root.addAppender(appender, Level.ALL, null);
        root.setLevel(Level.INFO);
        for (String name : debugLoggers) {
            config.addLogger(name, new LoggerConfig(name, Level.DEBUG, true));
        }
        context.updateLoggers();
    }

    /** Starts capturing; {@code debugLoggers} are captured at DEBUG too. */
    public static LogCapture start(String... debugLoggers) {
        return new LogCapture(List.of(debugLoggers));
    }

    private static String format(LogEvent event) {
        StringBuilder s =
                new StringBuilder()
                        .append(event.getLevel())
                        .append(' ')
                        .append(event.getLoggerName())
                        .append(" - ")
                        .append(event.getMessage().getFormattedMessage());
        if (event.getThrown() != null) {
            StringWriter trace = new StringWriter();
            event.getThrown().printStackTrace(new PrintWriter(trace));
            s.append('\n').append(trace);
        }
        return s.toString();
    }

    /** Every event so far: level, logger, message and stack trace. */
    public List<String> events() {
        return new ArrayList<>(events);
    }

    @Override
    public void close() {
        Configuration config = context.getConfiguration();
        LoggerConfig root = config.getRootLogger();
        root.removeAppender(NAME);
        rootAppenders.keySet().forEach(root::removeAppender);
        rootAppenders.values().forEach(a -> root.addAppender(a, null, null));
        root.setLevel(rootLevel);
        debugLoggers.forEach(config::removeLogger);
        context.updateLoggers();
        appender.stop();
    }
}
