package dev.vigil.config;

/** A configuration the job cannot start with; the message names the key and what to fix. */
public class ConfigException extends RuntimeException {
    public ConfigException(String message) {
        super(message);
    }
}
