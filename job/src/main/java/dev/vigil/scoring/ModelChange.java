package dev.vigil.scoring;

/**
 * What a device's state written by another model version becomes ({@code vigil.model.on-change}).
 */
public enum ModelChange {
    /** Zero the memory and warm up again; keep the order guard. The default. */
    RESET,
    /** Keep the memory under the new version when the sizes match, else reset. */
    KEEP,
    /** Stop the job, naming both versions. */
    FAIL
}
